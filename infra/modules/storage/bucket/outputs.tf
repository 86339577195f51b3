output "bucket" {
  value = {
    id     = aws_s3_bucket.this.id
    bucket = aws_s3_bucket.this.bucket
    arn    = aws_s3_bucket.this.arn
  }
}
