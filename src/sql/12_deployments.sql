-- Deployments: which stored model serves a name (src/deploy.c, with the resolver).

CREATE TABLE mnist_deployments (
	id bigserial PRIMARY KEY,
	name text NOT NULL,
	model_id bigint NOT NULL,
	replaced_model_id bigint,
	deployed_at timestamptz NOT NULL DEFAULT now(),
	deployed_by regrole NOT NULL,
	reason text NOT NULL,
	rollback_to bigint
);
CREATE INDEX mnist_deployments_name_id ON mnist_deployments (name, id);

COMMENT ON TABLE mnist_deployments IS 'Deployment history: the latest row of a name whose model still exists names the model serving it (a name never deployed serves its newest model). Written only by mnist_deploy, mnist_rollback and the training functions.';
COMMENT ON SEQUENCE mnist_deployments_id_seq IS 'Ids of mnist_deployments.';
COMMENT ON COLUMN mnist_deployments.id IS 'Deployment id, in the order of the decisions.';
COMMENT ON COLUMN mnist_deployments.name IS 'Model name.';
COMMENT ON COLUMN mnist_deployments.model_id IS 'The model deployed (mnist_models.id).';
COMMENT ON COLUMN mnist_deployments.replaced_model_id IS 'The model that served the name before, or NULL.';
COMMENT ON COLUMN mnist_deployments.deployed_at IS 'When the deployment was decided (its transaction''s start).';
COMMENT ON COLUMN mnist_deployments.deployed_by IS 'Role that deployed.';
COMMENT ON COLUMN mnist_deployments.reason IS 'manual, rollback, trained (storing deployed it), gate (with the validation accuracies that decided), or upgrade.';
COMMENT ON COLUMN mnist_deployments.rollback_to IS 'The deployment (id) that mnist_rollback returns to from this one, or NULL when there is nothing earlier.';

-- the history survives pg_dump
SELECT pg_catalog.pg_extension_config_dump('mnist_deployments', '');
SELECT pg_catalog.pg_extension_config_dump('mnist_deployments_id_seq', '');

-- everybody may read deployments; only the functions (running as the owner) write them
REVOKE ALL ON mnist_deployments FROM PUBLIC;
GRANT SELECT ON mnist_deployments TO PUBLIC;

CREATE TRIGGER mnist_deployments_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mnist_deployments
	FOR EACH STATEMENT EXECUTE FUNCTION mnist_models_changed();

CREATE FUNCTION mnist_deploy(model_name text, model_id bigint DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'mnist_deploy'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION mnist_deploy(text, bigint) IS 'Deploys a stored model of that name (model_id NULL: its newest): every session serves it from its next statement. Only the role owning the name may. Returns the model id.';

CREATE FUNCTION mnist_rollback(model_name text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'mnist_rollback'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION mnist_rollback(text) IS 'Deploys again the model deployed before the current one, one step further back per call (an error when there is nothing earlier). Only the role owning the name may. Returns the model id.';
