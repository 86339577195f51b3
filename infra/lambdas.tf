# The ETL package (lambdas/totes) is the function code; pandas and pyarrow come from the AWS SDK
# for pandas layer, psycopg from a layer CI builds into dependency_layer_dir.
data "archive_file" "code" {
  type        = "zip"
  source_dir  = "${path.module}/../lambdas"
  output_path = "${path.module}/build/totes-code.zip"
  excludes    = ["terrific_totes.egg-info", "totes/devstack"]
}

data "archive_file" "dependencies" {
  type        = "zip"
  source_dir  = local.dependency_layer_dir
  output_path = "${path.module}/build/totes-dependencies.zip"
}

resource "aws_lambda_layer_version" "dependencies" {
  layer_name          = "${local.prefix}-dependencies"
  filename            = data.archive_file.dependencies.output_path
  source_code_hash    = data.archive_file.dependencies.output_base64sha256
  compatible_runtimes = ["python3.12"]
}

resource "aws_cloudwatch_log_group" "lambda" {
  for_each          = local.lambda_names
  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
}

data "aws_kms_alias" "s3" {
  name = "alias/aws/s3"
}

data "aws_iam_policy_document" "lambda_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lambda" {
  for_each           = local.lambda_names
  name               = "${each.value}-role"
  assume_role_policy = data.aws_iam_policy_document.lambda_trust.json
}

# Least privilege per stage: its own log group, the lake prefixes it reads or writes (no
# delete: the lakes are write-once), and only the secret it needs.
data "aws_iam_policy_document" "lambda" {
  for_each = local.lambda_names

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda[each.key].arn}:*"]
  }

  dynamic "statement" {
    for_each = {
      extract   = { read = ["ingestion"], write = ["ingestion"] }
      transform = { read = ["ingestion", "processed"], write = ["processed"] }
      load      = { read = ["processed"], write = [] }
      lock      = { read = [], write = [] }
    }[each.key].read
    content {
      sid       = "Read${title(statement.value)}"
      actions   = ["s3:GetObject", "s3:ListBucket"]
      resources = [aws_s3_bucket.lake[statement.value].arn, "${aws_s3_bucket.lake[statement.value].arn}/*"]
    }
  }

  dynamic "statement" {
    for_each = {
      extract   = ["ingestion"]
      transform = ["processed"]
      load      = []
      lock      = []
    }[each.key]
    content {
      sid       = "Write${title(statement.value)}"
      actions   = ["s3:PutObject"]
      resources = ["${aws_s3_bucket.lake[statement.value].arn}/*"]
    }
  }

  dynamic "statement" {
    for_each = { extract = ["source"], transform = [], load = ["warehouse"], lock = [] }[each.key]
    content {
      sid       = "Read${title(statement.value)}Secret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [aws_secretsmanager_secret.database[statement.value].arn]
    }
  }

  # The cycle lock: its lease records under _leases/ in the ingestion bucket, and whether the
  # execution holding a lease still runs.
  dynamic "statement" {
    for_each = each.key == "lock" ? ["leases"] : []
    content {
      sid       = "LeaseRecords"
      actions   = ["s3:GetObject", "s3:PutObject"]
      resources = ["${aws_s3_bucket.lake["ingestion"].arn}/_leases/*"]
    }
  }

  dynamic "statement" {
    for_each = each.key == "lock" ? ["leases"] : []
    content {
      sid       = "ListLeaseRecords"
      actions   = ["s3:ListBucket"]
      resources = [aws_s3_bucket.lake["ingestion"].arn]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["_leases/*"]
      }
    }
  }

  dynamic "statement" {
    for_each = each.key == "lock" ? ["executions"] : []
    content {
      sid       = "LeaseHolderStatus"
      actions   = ["states:DescribeExecution"]
      resources = ["arn:${local.partition}:states:${var.aws_region}:${local.account_id}:execution:${local.state_machine}:*"]
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

resource "aws_iam_role_policy" "lambda" {
  for_each = local.lambda_names
  name     = "${each.value}-policy"
  role     = aws_iam_role.lambda[each.key].id
  policy   = data.aws_iam_policy_document.lambda[each.key].json
}

resource "aws_lambda_function" "stage" {
  for_each         = local.lambda_names
  function_name    = each.value
  role             = aws_iam_role.lambda[each.key].arn
  runtime          = "python3.12"
  handler          = local.lambda_handlers[each.key]
  filename         = data.archive_file.code.output_path
  source_code_hash = data.archive_file.code.output_base64sha256
  layers           = [var.aws_sdk_pandas_layer_arn, aws_lambda_layer_version.dependencies.arn]
  timeout          = local.lambda_timeout_seconds[each.key]
  memory_size      = local.lambda_memory_mb[each.key]
  # No reserved concurrency: overlapping executions are serialised by the cycle lock, and every
  # commit is one-winner by sequence (docs/architecture.md).

  environment {
    variables = {
      TOTES_SOURCE_SECRET_ID    = aws_secretsmanager_secret.database["source"].name
      TOTES_WAREHOUSE_SECRET_ID = aws_secretsmanager_secret.database["warehouse"].name
      TOTES_INGESTION_URI       = "s3://${aws_s3_bucket.lake["ingestion"].bucket}"
      TOTES_PROCESSED_URI       = "s3://${aws_s3_bucket.lake["processed"].bucket}"
    }
  }

  depends_on = [aws_cloudwatch_log_group.lambda, aws_iam_role_policy.lambda]
}
