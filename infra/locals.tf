# Resource names: the same as totes.naming.ResourceNames, which the DAG defaults and the local
# stack use (tests/infra checks that they agree). Bucket names are global across all of AWS, so
# on AWS they end in the account id: two teams deploying the same environment name never
# collide (the Lambdas and the DAG are told the names, they never derive them).
locals {
  project = "totes"
  prefix  = "${local.project}-${var.environment}"

  ingestion_bucket = "${local.prefix}-ingestion-${local.account_id}"
  processed_bucket = "${local.prefix}-processed-${local.account_id}"
  airflow_bucket   = "${local.prefix}-airflow-${local.account_id}"
  artifacts_bucket = "${local.prefix}-artifacts-${local.account_id}"
  alerts_topic     = "${local.prefix}-alerts"
  state_machine    = "${local.prefix}-pipeline"
  source_secret    = "${local.project}/${var.environment}/source-db"
  warehouse_secret = "${local.project}/${var.environment}/warehouse-db"
  mwaa_environment = "${local.prefix}-airflow"

  # The four functions, named "${local.prefix}-${function}" as totes.naming does; their code,
  # handlers and layers come from the packaging manifest (build/artifacts.json).
  lambda_names = { for function in ["extract", "transform", "load", "lock"] : function => "${local.prefix}-${function}" }

  # What the Lambdas' embedded metrics are filed under (Powertools), and the alarms read.
  metrics_namespace = "TerrificTotes"
  metrics_service   = "totes-${var.environment}"

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
}
