resource "aws_sns_topic" "alerts" {
  name = local.alerts_topic
}

resource "aws_sns_topic_subscription" "alert_email" {
  count     = var.alert_email == null ? 0 : 1
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.alert_email
}

data "aws_iam_policy_document" "alerts_topic" {
  statement {
    sid       = "AccountPublishes"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts_topic.json
}

# The state machine: the same Amazon States Language template the local stack deploys to moto.
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
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "state_machine" {
  name               = "${local.state_machine}-role"
  assume_role_policy = data.aws_iam_policy_document.states_trust.json
}

# Only what the definition does: invoke the three stages and publish to the alerts topic.
data "aws_iam_policy_document" "state_machine" {
  statement {
    sid       = "InvokeStages"
    actions   = ["lambda:InvokeFunction"]
    resources = flatten([for f in aws_lambda_function.stage : [f.arn, "${f.arn}:*"]])
  }
  statement {
    sid       = "PublishAlerts"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
  }
}

resource "aws_iam_role_policy" "state_machine" {
  name   = "${local.state_machine}-policy"
  role   = aws_iam_role.state_machine.id
  policy = data.aws_iam_policy_document.state_machine.json
}

resource "aws_sfn_state_machine" "pipeline" {
  name       = local.state_machine
  role_arn   = aws_iam_role.state_machine.arn
  type       = "STANDARD"
  definition = templatefile("${path.module}/state_machine.asl.json", {
    extract_function_arn   = aws_lambda_function.stage["extract"].arn
    transform_function_arn = aws_lambda_function.stage["transform"].arn
    load_function_arn      = aws_lambda_function.stage["load"].arn
    lock_function_arn      = aws_lambda_function.stage["lock"].arn
    alerts_topic_arn       = aws_sns_topic.alerts.arn
  })
  depends_on = [aws_iam_role_policy.state_machine]
}

# Alarms reach the same topic: a failure is reported even if Airflow itself is down.
resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each            = aws_lambda_function.stage
  alarm_name          = "${each.value.function_name}-errors"
  alarm_description   = "The ${each.key} Lambda raised an error; see its log group."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
}

resource "aws_cloudwatch_metric_alarm" "executions" {
  for_each = {
    failed    = "ExecutionsFailed"
    timed-out = "ExecutionsTimedOut"
  }
  alarm_name          = "${local.state_machine}-executions-${each.key}"
  alarm_description   = "A pipeline execution ended ${each.key}; the execution's alert names run and error."
  namespace           = "AWS/States"
  metric_name         = each.value
  dimensions          = { StateMachineArn = aws_sfn_state_machine.pipeline.arn }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
}
