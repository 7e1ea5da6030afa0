# Sourced by the scripts: puts the dev virtualenv and the collection in reach.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$repo/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$repo/.venv/collections"
export ANSIBLE_HOST_KEY_CHECKING=true
export ANSIBLE_PIPELINING=true
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0}
