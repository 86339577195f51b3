# Amazon MWAA: the DAG, our plugins and the requirements file in a private bucket, the DAG's
# Variables in Secrets Manager. Created only when subnets are given: the VPC (two private
# subnets with a NAT or VPC endpoints) belongs to the network team's stack, not here.
locals {
  mwaa_enabled = length(var.mwaa_subnet_ids) > 0
}

resource "aws_s3_bucket" "airflow" {
  count  = local.mwaa_enabled ? 1 : 0
  bucket = local.airflow_bucket
}

resource "aws_s3_bucket_versioning" "airflow" {
  count  = local.mwaa_enabled ? 1 : 0
  bucket = aws_s3_bucket.airflow[0].id
  versioning_configuration {
    status = "Enabled" # MWAA requires it
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "airflow" {
  count  = local.mwaa_enabled ? 1 : 0
  bucket = aws_s3_bucket.airflow[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "airflow" {
  count                   = local.mwaa_enabled ? 1 : 0
  bucket                  = aws_s3_bucket.airflow[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# plugins.zip: our operators plus totes/naming.py, which they import for the local defaults.
data "archive_file" "plugins" {
  type        = "zip"
  output_path = "${path.module}/build/plugins.zip"

  dynamic "source" {
    for_each = fileset("${path.module}/../plugins", "totes_airflow/*.py")
    content {
      content  = file("${path.module}/../plugins/${source.value}")
      filename = source.value
    }
  }
  source {
    content  = file("${path.module}/../lambdas/totes/__init__.py")
    filename = "totes/__init__.py"
  }
  source {
    content  = file("${path.module}/../lambdas/totes/naming.py")
    filename = "totes/naming.py"
  }
}

resource "aws_s3_object" "dag" {
  count       = local.mwaa_enabled ? 1 : 0
  bucket      = aws_s3_bucket.airflow[0].id
  key         = "dags/totes_pipeline.py"
  source      = "${path.module}/../dags/totes_pipeline.py"
  source_hash = filemd5("${path.module}/../dags/totes_pipeline.py")
}

resource "aws_s3_object" "plugins" {
  count       = local.mwaa_enabled ? 1 : 0
  bucket      = aws_s3_bucket.airflow[0].id
  key         = "plugins.zip"
  source      = data.archive_file.plugins.output_path
  source_hash = data.archive_file.plugins.output_md5
}

resource "aws_s3_object" "requirements" {
  count       = local.mwaa_enabled ? 1 : 0
  bucket      = aws_s3_bucket.airflow[0].id
  key         = "requirements.txt"
  source      = "${path.module}/../requirements.txt"
  source_hash = filemd5("${path.module}/../requirements.txt")
}

# The DAG reads these through Airflow's Secrets Manager backend. ARNs, not secrets.
resource "aws_secretsmanager_secret" "airflow_variable" {
  for_each = {
    totes_state_machine_arn = aws_sfn_state_machine.pipeline.arn
    totes_alerts_topic_arn  = aws_sns_topic.alerts.arn
  }
  name = "airflow/variables/${each.key}"
}

resource "aws_secretsmanager_secret_version" "airflow_variable" {
  for_each = {
    totes_state_machine_arn = aws_sfn_state_machine.pipeline.arn
    totes_alerts_topic_arn  = aws_sns_topic.alerts.arn
  }
  secret_id     = aws_secretsmanager_secret.airflow_variable[each.key].id
  secret_string = each.value
}

data "aws_iam_policy_document" "mwaa_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "mwaa" {
  count              = local.mwaa_enabled ? 1 : 0
  name               = "${local.mwaa_environment}-execution"
  assume_role_policy = data.aws_iam_policy_document.mwaa_trust.json
}

data "aws_iam_policy_document" "mwaa" {
  # What the DAG does: start and watch executions of this state machine only (a failed run is
  # restarted as a new execution, never redriven), and publish its failure emails.
  statement {
    sid       = "StartPipeline"
    actions   = ["states:StartExecution"]
    resources = [aws_sfn_state_machine.pipeline.arn]
  }
  statement {
    sid       = "WatchPipelineExecutions"
    actions   = ["states:DescribeExecution"]
    resources = [
      "arn:${local.partition}:states:${var.aws_region}:${local.account_id}:execution:${local.state_machine}:*"
    ]
  }
  statement {
    sid       = "FailureEmails"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
  }
  statement {
    sid       = "DagVariables"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [for s in aws_secretsmanager_secret.airflow_variable : s.arn]
  }
  # What MWAA itself needs (AWS's documented execution-role policy, scoped to this environment).
  statement {
    sid       = "PublishMetrics"
    actions   = ["airflow:PublishMetrics"]
    resources = ["arn:${local.partition}:airflow:${var.aws_region}:${local.account_id}:environment/${local.mwaa_environment}"]
  }
  statement {
    sid       = "ReadEnvironmentBucket"
    actions   = ["s3:GetObject*", "s3:GetBucket*", "s3:List*"]
    resources = [
      "arn:${local.partition}:s3:::${local.airflow_bucket}",
      "arn:${local.partition}:s3:::${local.airflow_bucket}/*",
    ]
  }
  statement {
    sid     = "AirflowLogs"
    actions = [
      "logs:CreateLogStream", "logs:CreateLogGroup", "logs:PutLogEvents", "logs:GetLogEvents",
      "logs:GetLogRecord", "logs:GetLogGroupFields", "logs:GetQueryResults",
    ]
    resources = ["arn:${local.partition}:logs:${var.aws_region}:${local.account_id}:log-group:airflow-${local.mwaa_environment}-*"]
  }
  statement {
    sid       = "DescribeLogGroups"
    actions   = ["logs:DescribeLogGroups", "cloudwatch:PutMetricData"]
    resources = ["*"] # neither action supports resource-level permissions
  }
  statement {
    sid     = "CeleryQueue"
    actions = [
      "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:SendMessage",
    ]
    resources = ["arn:${local.partition}:sqs:${var.aws_region}:*:airflow-celery-*"]
  }
  statement {
    sid       = "CeleryQueueEncryption"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*", "kms:Encrypt"]
    resources = ["*"] # the AWS-owned key of MWAA's queue, restricted to SQS below
    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["sqs.${var.aws_region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "mwaa" {
  count  = local.mwaa_enabled ? 1 : 0
  name   = "${local.mwaa_environment}-policy"
  role   = aws_iam_role.mwaa[0].id
  policy = data.aws_iam_policy_document.mwaa.json
}

resource "aws_mwaa_environment" "airflow" {
  count                 = local.mwaa_enabled ? 1 : 0
  name                  = local.mwaa_environment
  airflow_version       = var.airflow_version
  environment_class     = var.mwaa_environment_class
  execution_role_arn    = aws_iam_role.mwaa[0].arn
  source_bucket_arn     = aws_s3_bucket.airflow[0].arn
  dag_s3_path           = "dags/"
  plugins_s3_path       = aws_s3_object.plugins[0].key
  requirements_s3_path  = aws_s3_object.requirements[0].key
  webserver_access_mode = "PRIVATE_ONLY"

  airflow_configuration_options = {
    "secrets.backend"        = "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    "secrets.backend_kwargs" = jsonencode({ variables_prefix = "airflow/variables", connections_prefix = "airflow/connections" })
  }

  network_configuration {
    subnet_ids         = var.mwaa_subnet_ids
    security_group_ids = var.mwaa_security_group_ids
  }

  logging_configuration {
    task_logs {
      enabled   = true
      log_level = "INFO"
    }
    scheduler_logs {
      enabled   = true
      log_level = "WARNING"
    }
    dag_processing_logs {
      enabled   = true
      log_level = "WARNING"
    }
  }

  depends_on = [aws_iam_role_policy.mwaa, aws_s3_object.dag]
}
