--
-- mnist2sql rejects bad input: one line "mnist2sql: FILE: problem", a non-zero exit
-- status and no output file left behind.  Fixtures: $MNIST_DATA/bad (test/prepare-data).
-- Paths are relative so the output does not depend on where the data lives.
--
-- the good pair, raw and gzip, gives the same SQL: 10 rows
\! cd "$MNIST_DATA/bad" && mnist2sql --images ok-images-idx3-ubyte --labels ok-labels-idx1-ubyte --table t --copy -o out.sql; echo "exit=$?"; grep -c '^[0-9]' out.sql; rm -f out.sql
\! cd "$MNIST_DATA/bad" && mnist2sql --images ok-images-idx3-ubyte.gz --labels ok-labels-idx1-ubyte --table t > ../scratch/gz.sql && mnist2sql --images ok-images-idx3-ubyte --labels ok-labels-idx1-ubyte --table t > ../scratch/raw.sql && cmp ../scratch/gz.sql ../scratch/raw.sql && echo "gzip and raw give the same SQL"; rm -f ../scratch/gz.sql ../scratch/raw.sql
-- each bad image file
\! cd "$MNIST_DATA/bad" && for f in missing-images-idx3-ubyte empty-images-idx3-ubyte bad-magic-images-idx3-ubyte ok-labels-idx1-ubyte size-32x32-images-idx3-ubyte truncated-header-images-idx3-ubyte truncated-images-idx3-ubyte trailing-images-idx3-ubyte corrupt-images-idx3-ubyte.gz badcrc-images-idx3-ubyte.gz truncated-images-idx3-ubyte.gz; do mnist2sql --images $f --labels ok-labels-idx1-ubyte --table t -o out.sql; echo "exit=$? left: $(ls out.sql* 2>/dev/null | wc -l)"; done
-- each bad label file
\! cd "$MNIST_DATA/bad" && for f in missing-labels-idx1-ubyte ok-images-idx3-ubyte mismatch-labels-idx1-ubyte label-12-labels-idx1-ubyte; do mnist2sql --images ok-images-idx3-ubyte --labels $f --table t --copy -o out.sql; echo "exit=$? left: $(ls out.sql* 2>/dev/null | wc -l)"; done
-- an existing output file is kept as it was when the input is bad
\! cd "$MNIST_DATA/scratch" && echo keep > kept.sql && mnist2sql --images ../bad/truncated-images-idx3-ubyte --labels ../bad/ok-labels-idx1-ubyte --table t -o kept.sql; echo "exit=$? content: $(cat kept.sql) files: $(ls kept.sql* | wc -l)"; rm -f kept.sql
-- -o replaces only a regular file (through a temporary file beside it, never left behind, never
-- an existing OUT.tmp); a FIFO or a character device is written directly; a symbolic link is
-- refused.  In a directory of its own.
\! d=$(mktemp -d "$MNIST_DATA/scratch/out.XXXXXX") && cd "$d" && ok="--images $MNIST_DATA/bad/ok-images-idx3-ubyte --labels $MNIST_DATA/bad/ok-labels-idx1-ubyte --table t --copy" && echo precious > out.sql.tmp && echo old > out.sql && mnist2sql $ok -o out.sql; echo "exit=$? rows: $(grep -c '^[0-9]' out.sql) out.sql.tmp: $(cat out.sql.tmp) files: $(ls | tr '\n' ' ')"; rm -rf "$d"
\! d=$(mktemp -d "$MNIST_DATA/scratch/out.XXXXXX") && cd "$d" && ok="--images $MNIST_DATA/bad/ok-images-idx3-ubyte --labels $MNIST_DATA/bad/ok-labels-idx1-ubyte --table t --copy" && echo other > target.sql && ln -s target.sql link.sql && mnist2sql $ok -o link.sql; echo "exit=$? link: $(test -L link.sql && echo kept) target: $(cat target.sql) files: $(ls | tr '\n' ' ')"; rm -rf "$d"
\! d=$(mktemp -d "$MNIST_DATA/scratch/out.XXXXXX") && cd "$d" && ok="--images $MNIST_DATA/bad/ok-images-idx3-ubyte --labels $MNIST_DATA/bad/ok-labels-idx1-ubyte --table t --copy" && mkfifo fifo && { timeout 10 mnist2sql $ok -o fifo & } && echo "rows read from the FIFO: $(timeout 10 grep -c '^[0-9]' fifo)"; wait $!; echo "exit=$? fifo: $(test -p fifo && echo kept) files: $(ls | tr '\n' ' ')"; rm -rf "$d"
\! d=$(mktemp -d "$MNIST_DATA/scratch/out.XXXXXX") && cd "$d" && ok="--images $MNIST_DATA/bad/ok-images-idx3-ubyte --labels $MNIST_DATA/bad/ok-labels-idx1-ubyte --table t --copy" && mknod full c 1 7 && mknod null c 1 3 && mnist2sql $ok -o full; echo "exit=$? full: $(test -c full && echo kept)"; mnist2sql $ok -o null; echo "exit=$? null: $(test -c null && echo kept) files: $(ls | tr '\n' ' ')"; rm -rf "$d"
-- --dir with a file missing writes neither SQL file
\! cd "$MNIST_DATA/bad" && mnist2sql --dir partial-dir --copy; echo "exit=$?"; ls partial-dir
-- usage errors
\! mnist2sql --images a --labels b; echo "exit=$?"
\! mnist2sql --images a --labels b --table t --limit -1; echo "exit=$?"
\! mnist2sql --images a --labels b --table t --bogus; echo "exit=$?"
\! mnist2sql --images a --labels b --table ''; echo "exit=$?"
\! mnist2sql --images a --labels b --table 'a234567890123456789012345678901234567890123456789012345678901234'; echo "exit=$?"
\! mnist2sql --dir x --table t; echo "exit=$?"
\! mnist2sql --download; echo "exit=$?"
\! mnist2sql --help | head -1; echo "exit=$?"
-- --download, with stand-ins for curl: one offline, one serving a local copy of a mirror
\! cd "$MNIST_DATA/scratch" && PATH="$MNIST_DATA/bad/bin-offline:$PATH" mnist2sql --dir dl --download --copy; echo "exit=$?"; ls dl; rm -rf dl
\! cd "$MNIST_DATA/scratch" && PATH="$MNIST_DATA/bad/bin-mirror:$PATH" mnist2sql --dir dl --download --copy; echo "exit=$?"; ls dl; grep -c '^[0-9]' dl/mnist_train.sql dl/mnist_test.sql
-- files already there are not downloaded again
\! cd "$MNIST_DATA/scratch" && PATH="$MNIST_DATA/bad/bin-offline:$PATH" mnist2sql --dir dl --download; echo "exit=$?"; rm -rf dl
