# -*- coding: utf-8 -*-
# Copyright: airgap.uv contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Detached bundle signatures with OpenSSH (``ssh-keygen -Y``, OpenSSH 8.1+).

Every Ansible controller has OpenSSH, and its signatures verify with an allowed-signers file
and no network; the Python standard library cannot verify a signature by itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import typing as t

from ansible_collections.airgap.uv.plugins.plugin_utils._bundle_format import SIGNATURE_NAMESPACE, BundleError

OLD_OPENSSH_HINT = ("ssh-keygen -Y needs OpenSSH 8.1 or newer (RHEL 8 ships 8.0); on such a controller check "
                    "the bundle's .sha256 file against a digest received over a trusted channel, or verify "
                    "it on a newer machine (see the README, Across the gap).")


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise BundleError("ssh-keygen (OpenSSH) is not on PATH; install openssh-client. " + OLD_OPENSSH_HINT)
    return found


def _run(args: t.Sequence[str], stdin: t.Optional[t.BinaryIO] = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), stdin=stdin if stdin is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)


def _unsupported(res: subprocess.CompletedProcess) -> bool:
    return "unknown option -- Y" in res.stderr or "illegal option -- Y" in res.stderr


def sign(path: str, key: str) -> str:
    """Write PATH + '.sig' signed with the private KEY; returns the signature's path."""
    if not os.path.isfile(key):
        raise BundleError("Signing key %s does not exist; pass the private key of an ssh key pair "
                          "(ssh-keygen -t ed25519 -f KEY)." % key)
    signature = path + ".sig"
    if os.path.lexists(signature):
        os.unlink(signature)  # ssh-keygen asks before overwriting
    res = _run([_ssh_keygen(), "-Y", "sign", "-q", "-f", key, "-n", SIGNATURE_NAMESPACE, path])
    if res.returncode != 0:
        hint = OLD_OPENSSH_HINT if _unsupported(res) else "check the key (a passphrase needs ssh-agent)."
        raise BundleError("Signing %s with %s failed: %s; %s" % (path, key, res.stderr.strip(), hint))
    return signature


def verify(path: str, signature: str, allowed_signers: str) -> str:
    """The principal whose key in ALLOWED_SIGNERS made SIGNATURE over PATH; a BundleError otherwise."""
    keygen = _ssh_keygen()
    if not os.path.isfile(allowed_signers):
        raise BundleError("Allowed signers file %s does not exist." % allowed_signers)
    if not os.path.isfile(signature):
        raise BundleError("%s has no signature (%s is missing): copy the .sig file that came with it, or set "
                          "uv_deploy_bundle_allow_unsigned: true to deploy it unsigned." % (path, signature))
    found = _run([keygen, "-Y", "find-principals", "-s", signature, "-f", allowed_signers])
    if found.returncode != 0 or not found.stdout.strip():
        hint = OLD_OPENSSH_HINT if _unsupported(found) else (
            "it was not signed by a key listed in %s (wrong signer, or the signature is damaged)." % allowed_signers)
        raise BundleError("Refusing %s: %s" % (path, hint))
    principal = found.stdout.split()[0]
    with open(path, "rb") as data:
        res = _run([keygen, "-Y", "verify", "-f", allowed_signers, "-I", principal, "-n", SIGNATURE_NAMESPACE,
                    "-s", signature], stdin=data)
    if res.returncode != 0:
        raise BundleError("Refusing %s: its signature does not verify for %s (%s): the file was changed after it "
                          "was signed, or the signature belongs to another file."
                          % (path, principal, (res.stderr or res.stdout).strip()))
    return principal
