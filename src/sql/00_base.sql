-- mnist_ml install script, assembled from src/sql/*.sql in name order.
\echo Use "CREATE EXTENSION mnist_ml" to load this file. \quit
