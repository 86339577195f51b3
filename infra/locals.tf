# Resource names: must match totes.naming.ResourceNames, which the DAG defaults and the local
# stack use (tests/infra checks that they do).
locals {
  project = "totes"
  prefix  = "${local.project}-${var.environment}"

  ingestion_bucket = "${local.prefix}-ingestion"
  processed_bucket = "${local.prefix}-processed"
  alerts_topic     = "${local.prefix}-alerts"
  state_machine    = "${local.prefix}-pipeline"
  source_secret    = "${local.project}/${var.environment}/source-db"
  warehouse_secret = "${local.project}/${var.environment}/warehouse-db"
  airflow_bucket   = "${local.prefix}-airflow"
  mwaa_environment = "${local.prefix}-airflow"

  # Lambda function name -> handler; the same callables the local stack registers
  # (lambdas/totes/devstack/deploy.py HANDLERS).
  lambda_handlers = {
    extract   = "totes.extract.handler.lambda_handler"
    transform = "totes.transform.handler.lambda_handler"
    load      = "totes.load.handler.lambda_handler"
    lock      = "totes.lock.handler.lambda_handler"
  }
  # The cycle lock reads and writes small lease records: little memory; its timeout covers its
  # wait for another cycle (TOTES_LOCK_WAIT_SECONDS, 300 s by default).
  lambda_memory_mb       = { extract = 3008, transform = 3008, load = 3008, lock = 256 }
  lambda_timeout_seconds = { extract = 900, transform = 900, load = 900, lock = 360 }
  lambda_names = { for stage, _ in local.lambda_handlers : stage => "${local.prefix}-${stage}" }

  dependency_layer_dir = coalesce(var.dependency_layer_dir, "${path.module}/build/layer")
  account_id           = data.aws_caller_identity.current.account_id
  partition            = data.aws_partition.current.partition
}
