# The whole platform in one root module. Each module is one part of the architecture
# (README.md, "Architecture"): storage, secrets, monitoring, artifacts, pipeline, network,
# orchestration.

terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  # Deploy step 3: set bucket to the S3 bucket you created for the Terraform state (step 2).
  # The state holds resource ids and ARNs, never a database password (the workflow writes
  # those straight into Secrets Manager), but keep the bucket private, versioned and
  # encrypted all the same (README.md, "Deploy"). The workflow passes the region at init.
  backend "s3" {
    bucket       = "CHANGE-ME-to-your-terraform-state-bucket"
    key          = "totes/terraform.tfstate"
    region       = "eu-west-2"
    encrypt      = true
    use_lockfile = true
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      project     = local.project
      environment = var.environment
      managed_by  = "terraform"
    }
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

module "storage" {
  source = "./modules/storage"

  buckets = {
    ingestion = local.ingestion_bucket
    processed = local.processed_bucket
    airflow   = local.airflow_bucket
    artifacts = local.artifacts_bucket
  }
}

module "secrets" {
  source = "./modules/secrets"

  source_secret_name     = local.source_secret
  warehouse_secret_name  = local.warehouse_secret
  airflow_connection_ids = ["totes_warehouse"]
  recovery_window_days   = var.secret_recovery_window_days
}

module "monitoring" {
  source = "./modules/monitoring"

  prefix                   = local.prefix
  alerts_topic_name        = local.alerts_topic
  alert_emails             = var.alert_emails
  account_id               = local.account_id
  partition                = local.partition
  aws_region               = var.aws_region
  state_machine_arn        = module.pipeline.state_machine_arn
  lambda_function_names    = module.pipeline.function_names
  metrics_namespace        = local.metrics_namespace
  metrics_service          = local.metrics_service
  freshness_threshold_secs = var.freshness_threshold_seconds
  heartbeat_window_secs    = var.heartbeat_window_seconds
}

module "artifacts" {
  source = "./modules/artifacts"

  manifest_path   = coalesce(var.artifacts_manifest, "${path.module}/../build/artifacts.json")
  repository_root = "${path.module}/.."
  functions       = keys(local.lambda_names)
}

module "pipeline" {
  source = "./modules/pipeline"

  prefix             = local.prefix
  environment        = var.environment
  account_id         = local.account_id
  partition          = local.partition
  aws_region         = var.aws_region
  function_names     = local.lambda_names
  state_machine_name = local.state_machine
  built_functions    = module.artifacts.functions
  built_layers       = module.artifacts.layers
  artifacts_bucket   = module.storage.buckets["artifacts"]
  ingestion_bucket   = module.storage.buckets["ingestion"]
  processed_bucket   = module.storage.buckets["processed"]
  source_secret      = module.secrets.source
  warehouse_secret   = module.secrets.warehouse
  alerts_topic_arn   = module.monitoring.alerts_topic_arn
  kms_key_arn        = module.monitoring.kms_key_arn
  log_retention_days = var.log_retention_days
  memory_mb          = var.lambda_memory_mb
  ephemeral_mb       = var.lambda_ephemeral_storage_mb
  timeout_seconds    = var.lambda_timeout_seconds
  pg_sslmode         = var.pg_sslmode
  pg_sslmode_dw      = var.pg_sslmode_dw
  metrics_namespace  = local.metrics_namespace
  metrics_service    = local.metrics_service
}

# MWAA's own network unless existing_vpc_id names one.
module "network" {
  source = "./modules/network"
  count  = var.existing_vpc_id == null ? 1 : 0

  name       = local.prefix
  cidr_block = var.vpc_cidr_block
}

module "orchestration" {
  source = "./modules/orchestration"

  environment_name      = local.mwaa_environment
  account_id            = local.account_id
  partition             = local.partition
  aws_region            = var.aws_region
  airflow_version       = var.airflow_version
  environment_class     = var.mwaa_environment_class
  min_workers           = var.mwaa_min_workers
  max_workers           = var.mwaa_max_workers
  schedulers            = var.mwaa_schedulers
  webserver_access_mode = var.mwaa_webserver_access_mode
  vpc_id                = var.existing_vpc_id == null ? module.network[0].vpc_id : var.existing_vpc_id
  subnet_ids            = var.existing_vpc_id == null ? module.network[0].private_subnet_ids : var.existing_private_subnet_ids
  bucket                = module.storage.buckets["airflow"]
  built                 = module.artifacts.mwaa
  state_machine_arn     = module.pipeline.state_machine_arn
  state_machine_name    = local.state_machine
  alerts_topic_arn      = module.monitoring.alerts_topic_arn
  kms_key_arn           = module.monitoring.kms_key_arn
  log_retention_days    = var.log_retention_days
}
