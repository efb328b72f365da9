#!/bin/sh
# One-shot job of docker-compose.yml (minio/mc image): the MLflow artifact bucket and an S3
# user that may use only that bucket (the MLflow server's keys; MinIO's root keys stay here).
# Safe to run again: every step keeps what exists.
#
# No secret is ever an argument of a command (arguments are world-readable in /proc and ps):
# mc takes the root keys from MC_HOST_local and the new user's secret key on stdin.
set -eu

: "${MINIO_ROOT_USER:?set in .env}"
: "${MINIO_ROOT_PASSWORD:?set in .env}"
: "${MLFLOW_BUCKET:?set in .env}"
: "${MLFLOW_S3_ACCESS_KEY:?set in .env}"
: "${MLFLOW_S3_SECRET_KEY:?set in .env}"
endpoint="${MINIO_ENDPOINT:-http://minio:9000}"
policy_name=mlflow-artifacts

# mc splits MC_HOST_<alias>=SCHEME://USER:SECRET@HOST at ':' and the last '@'.
for name in MINIO_ROOT_USER MINIO_ROOT_PASSWORD; do
    eval "value=\$$name"
    case "$value" in
        *:*) echo "minio-init: $name may not contain ':' (set it in .env)" >&2; exit 2 ;;
    esac
done
case "$endpoint" in
    http://* | https://*) ;;
    *) echo "minio-init: MINIO_ENDPOINT must be http(s)://HOST:PORT, got $endpoint" >&2; exit 2 ;;
esac
MC_HOST_local="${endpoint%%://*}://$MINIO_ROOT_USER:$MINIO_ROOT_PASSWORD@${endpoint#*://}"
export MC_HOST_local
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
printf '%s\n' "$MLFLOW_S3_SECRET_KEY" | mc admin user add local "$MLFLOW_S3_ACCESS_KEY" >/dev/null
if ! out=$(mc admin policy attach local "$policy_name" --user "$MLFLOW_S3_ACCESS_KEY" 2>&1); then
    case "$out" in
        *"already in effect"*) ;;
        *) printf '%s\n' "$out" >&2; exit 1 ;;
    esac
fi
echo "minio-init: bucket $MLFLOW_BUCKET ready for user $MLFLOW_S3_ACCESS_KEY"
