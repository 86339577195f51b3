# The two lakes: write-once objects (the code never deletes or overwrites), versioned,
# encrypted and private.
resource "aws_s3_bucket" "lake" {
  for_each = {
    ingestion = local.ingestion_bucket
    processed = local.processed_bucket
  }
  bucket = each.value
}

resource "aws_s3_bucket_versioning" "lake" {
  for_each = aws_s3_bucket.lake
  bucket   = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  for_each = aws_s3_bucket.lake
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "lake" {
  for_each                = aws_s3_bucket.lake
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_policy" "lake_tls_only" {
  for_each = aws_s3_bucket.lake
  bucket   = each.value.id
  policy   = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [each.value.arn, "${each.value.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
  depends_on = [aws_s3_bucket_public_access_block.lake]
}

# Database credentials. Terraform creates the secrets empty; their JSON values
# ({"PG_HOST": ..., "PG_PASSWORD": ...}) are set out of band, so no password is in state or code:
#   aws secretsmanager put-secret-value --secret-id totes/<env>/source-db --secret-string file://...
resource "aws_secretsmanager_secret" "database" {
  for_each = {
    source    = local.source_secret
    warehouse = local.warehouse_secret
  }
  name        = each.value
  description = "Terrific Totes ${each.key} database settings (PG_* JSON), set out of band"
}
