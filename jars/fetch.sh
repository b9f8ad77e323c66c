#!/usr/bin/env bash
# Fetch the jars pinned in jars/jars.lock from Maven Central with Maven, into one folder, and check
# each against its SHA-256. A jar already there and intact is not fetched again, so a second run
# only re-checks the sums.
#
#   jars/fetch.sh [DEST [PROFILE]]    DEST: default jars/lib; PROFILE: all (default), local,
#                                     compose, stack (the REST catalog of `lab stack`) or
#                                     kafka-broker
# The kafka-broker jars (the broker `lab kafka start` runs) go into DEST/kafka-broker, apart from
# the jars Spark loads.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lock="$here/jars.lock"
dest="${1:-$here/lib}"
profile="${2:-all}"
# Pinned, so a fresh ~/.m2 resolves the same plugin as everyone else's.
copy_goal="org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy"

case "$profile" in all | local | compose | stack | kafka-broker) ;; *)
  echo "jars: unknown profile '$profile' (all, local, compose, stack or kafka-broker)." >&2
  exit 2
  ;;
esac
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

wanted=()  # "sha256  file" lines, for sha256sum -c (file relative to DEST)
todo=()    # "folder coordinate" of the jars still to fetch
while read -r profiles coordinate sha256 _; do
  case "$profiles" in '' | '#'*) continue ;; esac
  [[ $profile == all || ",$profiles," == *",$profile,"* ]] || continue
  IFS=: read -r _group artifact version <<<"$coordinate"
  folder="$dest"
  [[ ",$profiles," == *",kafka-broker,"* ]] && folder="$dest/kafka-broker"
  jar="${folder#"$dest"}/$artifact-$version.jar"
  jar="${jar#/}"
  wanted+=("$sha256  $jar")
  if ! { [[ -f "$dest/$jar" ]] && (cd "$dest" && echo "$sha256  $jar" | sha256sum -c --status); }; then
    todo+=("$folder $coordinate")
  fi
done <"$lock"

if ((${#todo[@]} == 0)); then
  echo "jars: all ${#wanted[@]} pinned jars are in $dest (SHA-256 checked); nothing to fetch."
  exit 0
fi

if ! command -v mvn >/dev/null; then
  echo "jars: Maven is needed to fetch them: sudo apt-get install -y maven (macOS: brew install maven)." >&2
  exit 1
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for entry in "${todo[@]}"; do
  read -r folder coordinate <<<"$entry"
  echo "jars: fetching $coordinate from Maven Central"
  mkdir -p "$folder"
  # --strict-checksums: Maven also checks the SHA-1 that Maven Central publishes beside each file.
  if ! mvn --batch-mode --quiet --strict-checksums "$copy_goal" \
    -Dartifact="$coordinate" -DoutputDirectory="$folder" -Dmdep.overWriteReleases=true \
    >"$log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -m1 'ERROR' >&2 || true
    echo "jars: Maven could not fetch $coordinate; check the network (or a proxy in ~/.m2/settings.xml), then run make jars again." >&2
    exit 1
  fi
done

bad=0
for line in "${wanted[@]}"; do
  read -r sha256 jar <<<"$line"
  actual="$(sha256sum "$dest/$jar" | cut -d' ' -f1)"
  if [[ $actual != "$sha256" ]]; then
    # Never leave an unverified jar where lab_env looks for it.
    rm -f "$dest/$jar"
    echo "jars: $jar has SHA-256 $actual, but $lock pins $sha256; removed it." >&2
    bad=1
  fi
done
((bad == 0)) || exit 1
echo "jars: fetched ${#todo[@]} jar(s); all ${#wanted[@]} pinned jars are in $dest (SHA-256 checked)."
