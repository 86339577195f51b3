# Alerts: one encrypted SNS topic that everything which can fail publishes to (the state
# machine's NotifyFailure state, the DAG's failure callbacks and every alarm below), emailed to
# the addresses in alert_emails. The runbook in README.md says what each email means.

# One customer-managed key for the alerts topic and every log group: CloudWatch alarms can
# publish to an encrypted topic only when the key's policy lets CloudWatch use it, which an
# AWS managed key never does.
data "aws_iam_policy_document" "key" {
  # checkov:skip=CKV_AWS_109:A key policy's Resource "*" means this key only; the account statement is what lets IAM policies grant its use.
  # checkov:skip=CKV_AWS_111:A key policy's Resource "*" means this key only; the account statement is what lets IAM policies grant its use.
  # checkov:skip=CKV_AWS_356:A key policy's Resource "*" means this key only (AWS allows nothing else there).
  statement {
    sid       = "AccountAdministersThroughIam"
    actions   = ["kms:*"]
    resources = ["*"] # in a key policy, "*" is this key
    principals {
      type        = "AWS"
      identifiers = ["arn:${var.partition}:iam::${var.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishToTheEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"] # in a key policy, "*" is this key
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }

  statement {
    sid       = "CloudWatchLogsEncryptThisAccountsLogGroups"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"] # in a key policy, "*" is this key
    principals {
      type        = "Service"
      identifiers = ["logs.${var.aws_region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${var.partition}:logs:${var.aws_region}:${var.account_id}:log-group:*"]
    }
  }
}

resource "aws_kms_key" "alerts_and_logs" {
  description             = "${var.prefix}: alerts topic and log groups"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
}

resource "aws_kms_alias" "alerts_and_logs" {
  name          = "alias/${var.prefix}-alerts-and-logs"
  target_key_id = aws_kms_key.alerts_and_logs.key_id
}

resource "aws_sns_topic" "alerts" {
  name              = var.alerts_topic_name
  kms_master_key_id = aws_kms_key.alerts_and_logs.arn
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alert_emails)
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = each.value
}

data "aws_iam_policy_document" "topic" {
  statement {
    sid       = "AccountPublishesThroughIam"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
    principals {
      type        = "AWS"
      identifiers = ["arn:${var.partition}:iam::${var.account_id}:root"]
    }
  }
  statement {
    sid       = "ThisAccountsAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.topic.json
}

# An execution that ended badly. The state machine has already emailed the run, window and
# error (NotifyFailure); the alarm is the second signal, and the only one for an execution that
# was aborted or timed out, which never reaches NotifyFailure.
resource "aws_cloudwatch_metric_alarm" "executions" {
  for_each = {
    failed    = "ExecutionsFailed"
    timed-out = "ExecutionsTimedOut"
    aborted   = "ExecutionsAborted"
  }
  alarm_name          = "${var.prefix}-executions-${each.key}"
  alarm_description   = "A pipeline execution ended ${each.key} in the last 5 minutes. Runbook: README.md, Alerts."
  namespace           = "AWS/States"
  metric_name         = each.value
  dimensions          = { StateMachineArn = var.state_machine_arn }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

# Any invocation error, including one the state machine retried successfully: a retried
# error is still worth a look (a flaky network path, a function near its memory limit).
resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each            = var.lambda_function_names
  alarm_name          = "${each.value}-errors"
  alarm_description   = "The ${each.key} Lambda raised an error in the last 5 minutes; its log group has the message. Runbook: README.md, Alerts."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

# Silence is a failure too: when MWAA is down or the DAG is paused no execution starts, so no
# failure is ever reported. Step Functions publishes nothing in an hour without executions, so
# missing data must count as breaching.
resource "aws_cloudwatch_metric_alarm" "heartbeat" {
  alarm_name          = "${var.prefix}-no-successful-execution"
  alarm_description   = "No pipeline execution succeeded in the last ${var.heartbeat_window_secs / 60} minutes (the DAG starts one every 20). Runbook: README.md, Alerts."
  namespace           = "AWS/States"
  metric_name         = "ExecutionsSucceeded"
  dimensions          = { StateMachineArn = var.state_machine_arn }
  statistic           = "Sum"
  period              = var.heartbeat_window_secs
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

# The product's promise: a change in totesys is in the warehouse within 30 minutes. The load
# emits FreshnessLagSeconds after each run (the age of the newest source change the warehouse
# holds). Executions that succeed but deliver nothing new (skipped, or stuck behind a held
# lock) show up here and nowhere else. No datapoint keeps the alarm's state: the heartbeat
# alarm covers a pipeline that stopped running.
resource "aws_cloudwatch_metric_alarm" "freshness" {
  alarm_name          = "${var.prefix}-warehouse-freshness"
  alarm_description   = "The warehouse is more than ${var.freshness_threshold_secs / 60} minutes behind totesys. Runbook: README.md, Alerts."
  namespace           = var.metrics_namespace
  metric_name         = "FreshnessLagSeconds"
  dimensions          = { service = var.metrics_service }
  statistic           = "Maximum"
  period              = 1200
  evaluation_periods  = 1
  threshold           = var.freshness_threshold_secs
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}
