/* mnist2sql: placeholder until the loader lands */
#include <stdio.h>
int main(void) { fprintf(stderr, "mnist2sql: not built yet\n"); return 1; }
