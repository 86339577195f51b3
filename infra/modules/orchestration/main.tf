# Amazon MWAA: the Airflow that starts the pipeline every 20 minutes. Its bucket holds the DAG
# folder (synced by the deploy workflow after apply), plugins.zip and requirements.txt (from
# the packaging manifest, read by ../artifacts). MWAA reinstalls plugins and requirements only
# when it is given a new object version, so the versions below are what makes a new build
# reach Airflow.

locals {
  # What the DAG reads as Airflow Variables, through MWAA's Secrets Manager backend. ARNs,
  # not credentials, so Terraform writes them.
  variables = {
    totes_state_machine_arn = var.state_machine_arn
    totes_alerts_topic_arn  = var.alerts_topic_arn
  }
  variables_prefix   = "airflow/variables"
  connections_prefix = "airflow/connections"

  environment_arn = "arn:${var.partition}:airflow:${var.aws_region}:${var.account_id}:environment/${var.environment_name}"
  secret_arn      = "arn:${var.partition}:secretsmanager:${var.aws_region}:${var.account_id}:secret"
  log_groups      = toset(["DAGProcessing", "Scheduler", "Task", "WebServer", "Worker"])
}

resource "aws_s3_object" "plugins" {
  bucket      = var.bucket.id
  key         = "plugins.zip"
  source      = var.built.plugins_path
  source_hash = var.built.plugins_sha256
}

resource "aws_s3_object" "requirements" {
  bucket      = var.bucket.id
  key         = "requirements.txt"
  source      = var.built.requirements_path
  source_hash = var.built.requirements_sha256
}

resource "aws_secretsmanager_secret" "variable" {
  # checkov:skip=CKV2_AWS_57:These hold ARNs that change only when Terraform changes them; there is nothing to rotate.
  # checkov:skip=CKV_AWS_149:ARNs, not credentials: the AWS managed key is enough.
  for_each                = local.variables
  name                    = "${local.variables_prefix}/${each.key}"
  description             = "Airflow Variable ${each.key} of the Terrific Totes DAG"
  recovery_window_in_days = 0 # an ARN is recreated by the next apply, nothing to recover
}

resource "aws_secretsmanager_secret_version" "variable" {
  for_each      = local.variables
  secret_id     = aws_secretsmanager_secret.variable[each.key].id
  secret_string = each.value
}

# Created before the environment so that Airflow's logs get a retention and the key; MWAA
# writes into log groups of these names.
resource "aws_cloudwatch_log_group" "airflow" {
  for_each          = local.log_groups
  name              = "airflow-${var.environment_name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_security_group" "airflow" {
  name        = "${var.environment_name}-mwaa"
  description = "MWAA schedulers, workers, web server and metadata database"
  vpc_id      = var.vpc_id

  ingress {
    description = "MWAA components talk to each other"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    self        = true
  }

  egress {
    description = "MWAA components talk to each other"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    self        = true
  }

  egress {
    description = "HTTPS to the AWS APIs (through the NAT gateway or VPC endpoints)"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }
  }
}

resource "aws_iam_role" "airflow" {
  name               = "${var.environment_name}-execution"
  assume_role_policy = data.aws_iam_policy_document.trust.json
}

data "aws_kms_alias" "s3" {
  name = "alias/aws/s3"
}

data "aws_iam_policy_document" "airflow" {
  # checkov:skip=CKV_AWS_111:Only the two statements whose actions take no resource are unconstrained (see their comments).
  # checkov:skip=CKV_AWS_356:Only the two statements whose actions take no resource use "*" (see their comments).

  # What the DAG does: start and watch executions of this state machine only, publish its
  # failure emails to the encrypted topic, read its Variables and connections.
  statement {
    sid       = "StartPipeline"
    actions   = ["states:StartExecution"]
    resources = [var.state_machine_arn]
  }
  statement {
    sid       = "WatchPipelineExecutions"
    actions   = ["states:DescribeExecution"]
    resources = ["arn:${var.partition}:states:${var.aws_region}:${var.account_id}:execution:${var.state_machine_name}:*"]
  }
  statement {
    sid       = "FailureEmails"
    actions   = ["sns:Publish"]
    resources = [var.alerts_topic_arn]
  }
  statement {
    sid       = "EncryptFailureEmails"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
  statement {
    # The prefixes, not only today's secrets: the backend looks up every connection id a task
    # names (aws_default included), and an absent one must read as "not found", not "denied".
    sid       = "SecretsBackend"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = ["${local.secret_arn}:${local.variables_prefix}/*", "${local.secret_arn}:${local.connections_prefix}/*"]
  }

  # What MWAA itself needs: AWS's documented execution-role policy, scoped to this environment.
  statement {
    sid       = "PublishMetrics"
    actions   = ["airflow:PublishMetrics"]
    resources = [local.environment_arn]
  }
  statement {
    sid       = "ReadEnvironmentBucket"
    actions   = ["s3:GetObject*", "s3:GetBucket*", "s3:List*"]
    resources = [var.bucket.arn, "${var.bucket.arn}/*"]
  }
  statement {
    sid       = "EnvironmentBucketEncryption"
    actions   = ["kms:Decrypt"]
    resources = [data.aws_kms_alias.s3.target_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.aws_region}.amazonaws.com"]
    }
  }
  statement {
    sid = "AirflowLogs"
    actions = [
      "logs:CreateLogStream", "logs:CreateLogGroup", "logs:PutLogEvents", "logs:GetLogEvents",
      "logs:GetLogRecord", "logs:GetLogGroupFields", "logs:GetQueryResults",
    ]
    resources = ["arn:${var.partition}:logs:${var.aws_region}:${var.account_id}:log-group:airflow-${var.environment_name}-*"]
  }
  statement {
    sid     = "AccountWideReads"
    actions = ["logs:DescribeLogGroups", "s3:GetAccountPublicAccessBlock", "cloudwatch:PutMetricData"]
    # AWS allows nothing narrower: none of these three actions supports resource-level
    # permissions.
    resources = ["*"]
  }
  statement {
    sid = "CeleryQueue"
    actions = [
      "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:SendMessage",
    ]
    resources = ["arn:${var.partition}:sqs:${var.aws_region}:*:airflow-celery-*"]
  }
  statement {
    # MWAA's Celery queue is encrypted with a key MWAA owns, in MWAA's account: every key
    # outside this account, used only through SQS.
    sid           = "CeleryQueueEncryption"
    actions       = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*", "kms:Encrypt"]
    not_resources = ["arn:${var.partition}:kms:*:${var.account_id}:key/*"]
    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["sqs.${var.aws_region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "airflow" {
  name   = "${var.environment_name}-policy"
  role   = aws_iam_role.airflow.id
  policy = data.aws_iam_policy_document.airflow.json
}

resource "aws_mwaa_environment" "this" {
  name               = var.environment_name
  airflow_version    = var.airflow_version
  environment_class  = var.environment_class
  min_workers        = var.min_workers
  max_workers        = var.max_workers
  schedulers         = var.schedulers
  execution_role_arn = aws_iam_role.airflow.arn
  source_bucket_arn  = var.bucket.arn

  dag_s3_path                    = "dags/"
  plugins_s3_path                = aws_s3_object.plugins.key
  plugins_s3_object_version      = aws_s3_object.plugins.version_id
  requirements_s3_path           = aws_s3_object.requirements.key
  requirements_s3_object_version = aws_s3_object.requirements.version_id

  webserver_access_mode = var.webserver_access_mode

  airflow_configuration_options = {
    # A deploy is meant to leave the pipeline running: Airflow would start a new DAG paused.
    "core.dags_are_paused_at_creation" = "False"
    "secrets.backend"                  = "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    "secrets.backend_kwargs" = jsonencode({
      connections_prefix = local.connections_prefix
      variables_prefix   = local.variables_prefix
    })
  }

  network_configuration {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.airflow.id]
  }

  logging_configuration {
    dag_processing_logs {
      enabled   = true
      log_level = "WARNING"
    }
    scheduler_logs {
      enabled   = true
      log_level = "WARNING"
    }
    task_logs {
      enabled   = true
      log_level = "INFO"
    }
    webserver_logs {
      enabled   = true
      log_level = "WARNING"
    }
    worker_logs {
      enabled   = true
      log_level = "WARNING"
    }
  }

  lifecycle {
    precondition {
      condition     = length(var.subnet_ids) == 2
      error_message = "MWAA needs two private subnets in two availability zones (existing_private_subnet_ids)."
    }
  }

  depends_on = [
    aws_iam_role_policy.airflow,
    aws_cloudwatch_log_group.airflow,
    aws_secretsmanager_secret_version.variable,
  ]
}
