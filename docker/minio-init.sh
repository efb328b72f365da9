#!/bin/sh
# One-shot job of docker-compose.yml (minio/mc image): the MLflow artifact bucket and an S3
# user that may use only that bucket (the MLflow server's keys; MinIO's root keys stay here).
# Safe to run again: every step keeps what exists.
set -eu

: "${MINIO_ROOT_USER:?set in .env}"
: "${MINIO_ROOT_PASSWORD:?set in .env}"
: "${MLFLOW_BUCKET:?set in .env}"
: "${MLFLOW_S3_ACCESS_KEY:?set in .env}"
: "${MLFLOW_S3_SECRET_KEY:?set in .env}"
endpoint="${MINIO_ENDPOINT:-http://minio:9000}"
policy_name=mlflow-artifacts

mc alias set local "$endpoint" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "local/$MLFLOW_BUCKET"

policy=$(mktemp)
trap 'rm -f "$policy"' EXIT
cat >"$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow",
     "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
     "Resource": ["arn:aws:s3:::$MLFLOW_BUCKET"]},
    {"Effect": "Allow",
     "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
     "Resource": ["arn:aws:s3:::$MLFLOW_BUCKET/*"]}
  ]
}
JSON
mc admin policy create local "$policy_name" "$policy"
mc admin user add local "$MLFLOW_S3_ACCESS_KEY" "$MLFLOW_S3_SECRET_KEY"
if ! out=$(mc admin policy attach local "$policy_name" --user "$MLFLOW_S3_ACCESS_KEY" 2>&1); then
    case "$out" in
        *"already in effect"*) ;;
        *) printf '%s\n' "$out" >&2; exit 1 ;;
    esac
fi
echo "minio-init: bucket $MLFLOW_BUCKET ready for user $MLFLOW_S3_ACCESS_KEY"
