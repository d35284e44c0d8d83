-- The reports of `origin eval`, newest last: the dashboard shows the newest one beside the model
-- being served. `report` is what `origin eval --json` prints (the chosen hyper-parameters, every
-- candidate's validation metrics, the chosen model and the popularity baseline on the test
-- split). `epoch` is the data set's epoch (table `dataset_epoch`) it was evaluated on, so a
-- report of a data set that an import has since replaced is shown as such.
CREATE TABLE model_evaluations (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    evaluated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    epoch        BIGINT,
    report       JSONB NOT NULL
);
