-- Quality bar on Fashion-MNIST: 60,000 training rows, 5 epochs, test accuracy >= 0.86.
\set schema train_fashion
\i sql/common/setup.psql
\set ECHO none
DROP TABLE mnist_train;
\set f :data '/fashion/mnist_train.sql'
\i :f
\set f :data '/fashion/mnist_test.sql'
\i :f
\set ECHO all
SELECT count(*) FROM mnist_train;
SELECT count(*) FROM mnist_test;
SELECT mnist_train('mnist_train', 'train_fashion', epochs => 5, seed => 0) AS id \gset
SELECT metrics->'rows' AS rows, jsonb_array_length(metrics->'epochs') AS epochs
  FROM mnist_models WHERE id = :id;
SELECT rows, accuracy >= 0.86 AS accuracy_ok FROM mnist_evaluate('mnist_test', 'train_fashion');
\set model train_fashion
\i sql/common/predict_matches_evaluate.psql
DELETE FROM mnist_models WHERE name = 'train_fashion';
DROP SCHEMA train_fashion CASCADE;
