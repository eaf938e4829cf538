# Sourced by the scripts that install Debian packages: run as root, directly or with sudo.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else echo "need root to run: $*" >&2; return 1; fi
}

# apt_install PACKAGE...: install from the Debian packages, refreshing the lists only if needed.
apt_install() {
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
  as_root apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}
