-- mnist_ml install script, assembled from src/sql/NN_*.sql in name order.
\echo Use "CREATE EXTENSION mnist_ml" to load this file. \quit
