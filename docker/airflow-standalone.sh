#!/bin/sh
# Airflow standalone (api-server, scheduler, dag-processor, triggerer in one container) with the
# admin password from .env instead of a generated one that only the first start prints.
set -eu
python - <<'PY'
import json
import os

path = os.path.join(os.environ["AIRFLOW_HOME"], "simple_auth_manager_passwords.json.generated")
with open(path, "w", encoding="utf-8") as fh:
    json.dump({"admin": os.environ.get("AIRFLOW_ADMIN_PASSWORD", "admin")}, fh)
PY
exec airflow standalone
