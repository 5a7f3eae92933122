package main

// usage is the command's -help text; docs/cli.md is the same contract at
// length.
const usage = `mayfly is the command-line client for a Mayfly server.

Usage:
  mayfly [--home DIR] [--server URL] COMMAND [ARGS]

  --home DIR     this device's state: keys, session, cursor (env MAYFLY_HOME; default ~/.mayfly)
  --server URL   the server's base URL (env MAYFLY_SERVER; default http://127.0.0.1:8080)
  --version      print the build (version, commit, Go) and exit

Commands:
  register HANDLE                  make the identity key and this device's key, register, log in
  whoami                           handle, user id, identity key fingerprint, device
  friend request HANDLE            ask HANDLE to be friends (accepts at once if HANDLE asked you)
  friend accept HANDLE             accept HANDLE's request
  friend decline HANDLE            decline HANDLE's request
  friend remove HANDLE             end the friendship with HANDLE
  friend block HANDLE              block HANDLE (ends friendship and requests)
  friend unblock HANDLE            lift the block
  friend verify HANDLE [--accept]  show the safety number with HANDLE; --accept trusts a changed key
  friend list [--json]             friends with fingerprints, then pending requests
  friend blocks [--json]           the users you blocked
  send HANDLE [--file PATH]... TEXT  exits 0 only once the server has stored it; prints the id;
                                   refuses (untrusted_keys) if HANDLE's identity key changed;
                                   --file attaches a file (up to 4, 25 MiB each; TEXT optional then)
  read [--wait DURATION] [--json] [--save DIR]
                                   prints unread messages, then marks them read (burns them);
                                   --save writes their files into DIR, never overwriting
  listen [--json]                  live messages and events until interrupted
  unread [--json]                  how many unread messages wait from whom (burns nothing)
  recall ID                        withdraw a message you sent (ID as send printed it) before it is read
  device list                      this user's devices
  device revoke ID                 on the primary: revoke a device and drop it from the signed list
                                   (another device may revoke only itself)
  device link                      on a new device: show a code, wait for approval, log in
  device approve CODE              on the primary: add the device showing CODE to the signed list
  device reset-identity            on another device when the primary is lost: new identity key
                                   (on a linked device it waits 72 h, the primary can cancel)
  device reset-identity --cancel   on the primary: cancel a pending identity reset
  token                            prints a fresh access token (for curl and NATS-native clients)
  account delete --yes             delete this account on the server for good (every device, friend, message)

--json prints one JSON object per line. A message has id, seq, from, to
(handles), text, sent_at (RFC 3339) and self (a copy of one you sent).

On failure mayfly exits non-zero and the first line on stderr starts with
an error code, e.g. "not_friend: this user is not your friend". Codes are
the server's (docs/api.md) or the client's own: usage, not_registered,
already_registered, link_mismatch, key_mismatch, untrusted_keys, local
(docs/cli.md).
`
