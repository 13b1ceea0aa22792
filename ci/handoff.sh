#!/usr/bin/env bash
# Hand the issued passwords to the admin's secure channel, then remove them from the runner.
# RECONCILER_CREDENTIALS_HANDOFF is a shell command run with the file as $1, for example
#   gpg --batch --encrypt --recipient it-centre@example.gov.vn -o - "$1" | curl -fsS -T - "$VAULT_URL"
# Its standard output is discarded (the build log must never show a password); only its status
# and its error messages are kept.
set -euo pipefail
secret=${RECONCILER_SECRET_DIR:?}
file="$secret/credentials.csv"
if [ ! -s "$file" ]; then
  echo "no passwords were issued"
  rm -rf "$secret"
  exit 0
fi
count=$(($(wc -l <"$file") - 1))
status=0
if [ -z "${RECONCILER_CREDENTIALS_HANDOFF:-}" ]; then
  echo "Error: $count passwords were issued but RECONCILER_CREDENTIALS_HANDOFF is not set" >&2
  status=1
elif bash -c "$RECONCILER_CREDENTIALS_HANDOFF" handoff "$file" >/dev/null; then
  echo "handed $count issued passwords to the secure channel"
else
  echo "Error: the credentials handoff failed: the $count passwords are lost with the runner; issue new ones with \`reconciler reset-password\`" >&2
  status=1
fi
shred -u "$file" 2>/dev/null || rm -f "$file"
rm -rf "$secret"
exit "$status"
