# Shared by the scripts that build the tests' Python venvs (sourced, not run).
#
#   venv_ready VENV STAMP_TEXT IMPORTS   true if VENV was built from STAMP_TEXT and imports IMPORTS
#   venv_build VENV STAMP_TEXT DEB... -- REQUIREMENT...
#                                        installs the Debian packages if missing (root only),
#                                        rebuilds VENV with Debian's python3 and the requirements

say() { printf '== %s\n' "$*" >&2; }

venv_ready() {
  local venv=$1 want=$2 imports=$3
  [ -f "$venv/.vinod-requirements" ] && [ "$(cat "$venv/.vinod-requirements")" = "$want" ] \
    && "$venv/bin/python" -c "import $imports" 2>/dev/null
}

venv_build() {
  local venv=$1 want=$2
  shift 2
  local missing=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || missing+=("$1")
    shift
  done
  shift
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      say "missing ${missing[*]}: install them as root"
      return 1
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  say "building $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  # Debian's interpreter: its headers are installed above, whatever python3 is first on PATH.
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "$@"
  printf '%s\n' "$want" > "$venv/.vinod-requirements"
}
