# The pipeline: four Lambda functions (extract, transform, load and the cycle lock) built by
# `make package`, and the state machine that chains them. Code, handlers, runtimes and layers
# come from the packaging manifest (build/artifacts.json, read by ../artifacts), never from the
# source tree, so what is deployed is exactly what was built and tested.

locals {
  functions = { for function, name in var.function_names : function => merge(var.built_functions[function], { name = name }) }

  # Zips go through the artifacts bucket: the arrow layer (pyarrow and numpy) is larger than the
  # 50 MB Lambda accepts in a direct upload.
  artifacts = merge(
    { for name, layer in var.built_layers : "layer:${name}" => layer },
    { for function, built in var.built_functions : "function:${function}" => built },
  )

  # Least privilege per function: the lakes it reads and writes (never a delete: the lakes are
  # write-once) and only the secret it reads.
  lake_access = {
    extract   = { read = ["ingestion"], write = ["ingestion"], secrets = ["source"] }
    transform = { read = ["ingestion", "processed"], write = ["processed"], secrets = [] }
    load      = { read = ["processed"], write = [], secrets = ["warehouse"] }
    lock      = { read = [], write = [], secrets = [] }
  }
  lakes   = { ingestion = var.ingestion_bucket, processed = var.processed_bucket }
  secrets = { source = var.source_secret, warehouse = var.warehouse_secret }

  execution_arns = "arn:${var.partition}:states:${var.aws_region}:${var.account_id}:execution:${var.state_machine_name}:*"
}

resource "aws_s3_object" "artifact" {
  for_each    = local.artifacts
  bucket      = var.artifacts_bucket.id
  key         = each.value.key
  source      = each.value.path
  source_hash = each.value.sha256
}

resource "aws_lambda_layer_version" "this" {
  for_each                 = var.built_layers
  layer_name               = "${var.prefix}-${each.key}"
  s3_bucket                = var.artifacts_bucket.id
  s3_key                   = aws_s3_object.artifact["layer:${each.key}"].key
  source_code_hash         = each.value.base64sha256
  compatible_runtimes      = [each.value.runtime]
  compatible_architectures = [each.value.architecture]
}

resource "aws_cloudwatch_log_group" "function" {
  for_each          = var.function_names
  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

data "aws_iam_policy_document" "lambda_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each           = var.function_names
  name               = "${each.value}-role"
  assume_role_policy = data.aws_iam_policy_document.lambda_trust.json
}

data "aws_kms_alias" "s3" {
  name = "alias/aws/s3"
}

data "aws_iam_policy_document" "function" {
  for_each = var.function_names

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  dynamic "statement" {
    for_each = local.lake_access[each.key].read
    content {
      sid       = "Read${title(statement.value)}Lake"
      actions   = ["s3:GetObject", "s3:ListBucket"]
      resources = [local.lakes[statement.value].arn, "${local.lakes[statement.value].arn}/*"]
    }
  }

  dynamic "statement" {
    for_each = local.lake_access[each.key].write
    content {
      sid       = "Write${title(statement.value)}Lake"
      actions   = ["s3:PutObject"]
      resources = ["${local.lakes[statement.value].arn}/*"]
    }
  }

  dynamic "statement" {
    for_each = local.lake_access[each.key].secrets
    content {
      sid       = "Read${title(statement.value)}Secret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [local.secrets[statement.value].arn]
    }
  }

  # The cycle lock: its lease records under _leases/ in the ingestion lake, and whether the
  # execution holding a lease still runs (the extract's snapshot holder asks the same of its own
  # execution, to let go of the source snapshot when the execution has failed).
  dynamic "statement" {
    for_each = each.key == "lock" ? ["leases"] : []
    content {
      sid       = "LeaseRecords"
      actions   = ["s3:GetObject", "s3:PutObject"]
      resources = ["${var.ingestion_bucket.arn}/_leases/*"]
    }
  }

  dynamic "statement" {
    for_each = each.key == "lock" ? ["leases"] : []
    content {
      sid       = "ListLeaseRecords"
      actions   = ["s3:ListBucket"]
      resources = [var.ingestion_bucket.arn]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["_leases/*"]
      }
    }
  }

  dynamic "statement" {
    for_each = contains(["lock", "extract"], each.key) ? ["executions"] : []
    content {
      sid       = "ExecutionStatus"
      actions   = ["states:DescribeExecution"]
      resources = [local.execution_arns]
    }
  }

  statement {
    sid       = "LakeEncryption"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [data.aws_kms_alias.s3.target_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.aws_region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = var.function_names
  name     = "${each.value}-policy"
  role     = aws_iam_role.function[each.key].id
  policy   = data.aws_iam_policy_document.function[each.key].json
}

resource "aws_lambda_function" "this" {
  # checkov:skip=CKV_AWS_115:No reserved concurrency: a new account's quota must keep 10 unreserved, and the cycle lock and the one-winner commits already keep overlapping executions correct.
  # checkov:skip=CKV_AWS_116:Invoked synchronously by the state machine, which retries, catches and alerts; a dead-letter queue only serves asynchronous invocations.
  # checkov:skip=CKV_AWS_117:The databases are reached on their public endpoints over TLS; a VPC would add a NAT gateway for no narrower path.
  # checkov:skip=CKV_AWS_173:The environment holds secret ids, bucket URIs and settings, never a credential; the credentials are in Secrets Manager.
  # checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile in the build; the code comes from the tested build through a private, TLS-only bucket.
  # checkov:skip=CKV_AWS_50:Active tracing needs an xray:PutTraceSegments grant on every resource; the state machine's execution history and the JSON logs already time each stage.
  for_each         = local.functions
  function_name    = each.value.name
  role             = aws_iam_role.function[each.key].arn
  handler          = each.value.handler
  runtime          = each.value.runtime
  architectures    = [each.value.architecture]
  s3_bucket        = var.artifacts_bucket.id
  s3_key           = aws_s3_object.artifact["function:${each.key}"].key
  source_code_hash = each.value.base64sha256
  layers           = [for layer in each.value.layers : aws_lambda_layer_version.this[layer].arn]
  memory_size      = var.memory_mb[each.key]
  timeout          = var.timeout_seconds[each.key]

  ephemeral_storage {
    size = var.ephemeral_mb[each.key]
  }
  # No reserved_concurrent_executions: see the skip above.

  environment {
    variables = {
      TOTES_INGESTION_URI          = "s3://${var.ingestion_bucket.bucket}"
      TOTES_PROCESSED_URI          = "s3://${var.processed_bucket.bucket}"
      TOTES_SOURCE_SECRET_ID       = var.source_secret.name
      TOTES_WAREHOUSE_SECRET_ID    = var.warehouse_secret.name
      PG_SSLMODE                   = var.pg_sslmode
      PG_SSLMODE_DW                = var.pg_sslmode_dw
      TOTES_ENVIRONMENT            = var.environment
      POWERTOOLS_SERVICE_NAME      = var.metrics_service
      POWERTOOLS_METRICS_NAMESPACE = var.metrics_namespace
    }
  }

  depends_on = [aws_cloudwatch_log_group.function, aws_iam_role_policy.function]
}

# The state machine, from the one template the local stack also deploys.
module "definition" {
  source = "../state_machine_definition"

  extract_function_arn   = aws_lambda_function.this["extract"].arn
  transform_function_arn = aws_lambda_function.this["transform"].arn
  load_function_arn      = aws_lambda_function.this["load"].arn
  lock_function_arn      = aws_lambda_function.this["lock"].arn
  alerts_topic_arn       = var.alerts_topic_arn
}

resource "aws_cloudwatch_log_group" "state_machine" {
  name              = "/aws/vendedlogs/states/${var.state_machine_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

data "aws_iam_policy_document" "states_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }
  }
}

resource "aws_iam_role" "state_machine" {
  name               = "${var.state_machine_name}-role"
  assume_role_policy = data.aws_iam_policy_document.states_trust.json
}

# What the definition does: invoke the four functions and publish to the encrypted alerts
# topic; and what its logging needs.
data "aws_iam_policy_document" "state_machine" {
  # checkov:skip=CKV_AWS_111:Only the log-delivery statement is unconstrained, because those CloudWatch Logs actions take no resource (see its comment).
  # checkov:skip=CKV_AWS_356:Only the log-delivery statement uses "*", because those CloudWatch Logs actions take no resource (see its comment).
  statement {
    sid       = "InvokeFunctions"
    actions   = ["lambda:InvokeFunction"]
    resources = flatten([for f in aws_lambda_function.this : [f.arn, "${f.arn}:*"]])
  }
  statement {
    sid       = "PublishAlerts"
    actions   = ["sns:Publish"]
    resources = [var.alerts_topic_arn]
  }
  statement {
    sid       = "EncryptAlerts"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
  statement {
    sid = "ExecutionLogDelivery"
    actions = [
      "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
      "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    ]
    # AWS allows nothing narrower: these log-delivery actions support no resource-level
    # permissions (Step Functions' documented logging policy grants them on "*").
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "state_machine" {
  name   = "${var.state_machine_name}-policy"
  role   = aws_iam_role.state_machine.id
  policy = data.aws_iam_policy_document.state_machine.json
}

resource "aws_sfn_state_machine" "pipeline" {
  # checkov:skip=CKV_AWS_284:X-Ray tracing needs an xray grant on every resource; the execution history and the logs below already show each state's timing and error.
  name       = var.state_machine_name
  role_arn   = aws_iam_role.state_machine.arn
  type       = "STANDARD"
  definition = module.definition.definition

  # Every state's input, output and error: small JSON of keys and counts, never rows or
  # credentials (docs/architecture.md, payloads).
  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.state_machine.arn}:*"
    include_execution_data = true
    level                  = "ALL"
  }

  depends_on = [aws_iam_role_policy.state_machine]
}
