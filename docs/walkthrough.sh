#!/usr/bin/env bash
# The README's walkthrough, as one script: README.md shows each section below
# (the lines between a `# == name ==` marker and the next) verbatim, in the
# code block after its `<!-- walkthrough.sh: name -->` comment, and
# test/process/walkthrough.spec.ts runs this script against a freshly started
# service and checks every answer against the `# -> ` line written under the
# command, in order (`…` stands for any text on that line; a `# -> …` line
# alone stands for any number of lines).
#
# Run it from the repository on a fresh DATA_DIR, with the service running
# with the same DATA_DIR and PORT (defaults: ./var and 3000):
#   npm start                        # in another terminal
#   bash docs/walkthrough.sh
# It needs curl, node and oathtool (Debian: apt-get install oathtool).
set -euo pipefail
cd "$(dirname "$0")/.."

# == session ==
# Run these from the repository, with the DATA_DIR and PORT of `npm start`
# (the defaults: ./var and 3000): the tokens are signed with the secret kept there.
SU=$(npm run -s token -- --role superuser --firm acme)
OP=$(npm run -s token -- --role operator)
HOST=$(npm run -s token -- --role host)
DATA_DIR=${DATA_DIR:-var}
BASE=http://127.0.0.1:${PORT:-3000}
API=$BASE/v1/firms/acme

# A firm admin requests the MFA subscription; an operator activates it with 50 seats.
curl -s -w '\n' -X POST $API/mfa/subscription/request -H "Authorization: Bearer $SU" \
  -H 'content-type: application/json' -d '{"plan":"standard"}'
# -> {"position":"1","status":"requested","plan":"standard","licenseCount":0}
curl -s -w '\n' -X POST $API/mfa/subscription/activate -H "Authorization: Bearer $OP" \
  -H 'content-type: application/json' -d '{"plan":"standard","licenseCount":50}'
# -> {"position":"2","status":"active","plan":"standard","licenseCount":50}

# The admin enables MFA for all case managers.
curl -s -w '\n' -X PUT $API/mfa/enablement/case-managers -H "Authorization: Bearer $SU" \
  -H 'content-type: application/json' -d '{"enabled":true}'
# -> {"position":"3","caseManagers":true,"vendorCaseManagers":false,"corporations":{"mode":"all",…}}

# The host registers a case manager (a retry with the same Idempotency-Key is a no-op).
curl -s -w '\n' -X PUT $API/users/cm-1 -H "Authorization: Bearer $HOST" -H 'Idempotency-Key: sync-cm-1-v1' \
  -H 'content-type: application/json' \
  -d '{"role":"case-manager","name":"Ada Lovelace","email":"ada@firm.example","billingContact":true}'
# -> {"position":"4","userId":"cm-1","status":"active","role":"case-manager",…,"name":"Ada Lovelace",…,"enrolled":false}

curl -s -w '\n' $API/mfa/subscription -H "Authorization: Bearer $SU"
# -> {"status":"active","plan":"standard","licenseCount":50}
curl -s -w '\n' $API/mfa/enablement -H "Authorization: Bearer $SU"
# -> {"caseManagers":true,"vendorCaseManagers":false,"corporations":{"mode":"all","corpUsers":false,"foreignNationals":false,"specific":[]}}
curl -s -w '\n' $BASE/health
# -> {"status":"ok",…,"projections":[{"name":"enrolled-users","status":"live",…}
# == enrollment ==
# What must cm-1 do at login?
curl -s -w '\n' $API/users/cm-1/mfa/login-requirement -H "Authorization: Bearer $HOST"
# -> {"decision":"enroll","methods":["totp","webauthn"],"reason":"MFA is enabled for the user, …}

# Start a TOTP enrollment: the answer holds the otpauth URI and its QR code (SVG).
START=$(curl -s -X POST $API/users/cm-1/mfa/totp/enrollment -H "Authorization: Bearer $HOST" \
  -H 'content-type: application/json' -d '{"label":"Work phone"}')
ENROLLMENT=$(node -pe 'JSON.parse(process.argv[1]).enrollmentId' "$START")
SECRET=$(node -pe 'new URL(JSON.parse(process.argv[1]).otpauthUri).searchParams.get("secret")' "$START")

# Confirm with the code the app shows (here oathtool plays the app). This takes a seat.
curl -s -w '\n' -X POST $API/users/cm-1/mfa/totp/enrollment/$ENROLLMENT/confirm \
  -H "Authorization: Bearer $HOST" -H 'content-type: application/json' \
  -d "{\"code\":\"$(oathtool --totp -b $SECRET)\"}"
# -> {"position":"…","factorId":"…"}

# Now the decision is verify.
curl -s -w '\n' $API/users/cm-1/mfa/login-requirement -H "Authorization: Bearer $HOST"
# -> {"decision":"verify","methods":["totp"]}

# A code is accepted once, and the confirmation spent this one: log in with the
# code the app shows next (the next 30 s step, which the service already accepts).
VERIFIED=$(curl -s -X POST $API/users/cm-1/mfa/totp/verify -H "Authorization: Bearer $HOST" \
  -H 'content-type: application/json' -d "{\"code\":\"$(oathtool --totp -b $SECRET --now 'now + 30 seconds')\"}")
echo "$VERIFIED"
# -> {"verified":true,"position":"…"}
# == dashboards ==
# Read your own writes: wait until the read models have applied the login above.
AT=$(node -pe 'JSON.parse(process.argv[1]).position' "$VERIFIED")
curl -s -w '\n' "$API/mfa/usage?minPosition=$AT" -H "Authorization: Bearer $SU"
# -> {"status":"active","licenseCount":50,"seatsInUse":1,"unutilized":49,"usagePercent":2}
curl -s -w '\n' "$API/mfa/usage/history?from=2026-01-01T00:00:00Z&minPosition=$AT" -H "Authorization: Bearer $SU"
# -> {"from":"2026-01-01T00:00:00.000Z","to":"…","licenseCount":50,"seatsInUse":1,"points":[{"at":"2026-01-01T00:00:00.000Z","position":"0","seatsInUse":0,"licenseCount":0,"usagePercent":0},{"at":"…","position":"2","seatsInUse":0,"licenseCount":50,"usagePercent":0},{"at":"…","position":"…","seatsInUse":1,"licenseCount":50,"usagePercent":2}]}
curl -s -w '\n' "$API/mfa/counters?minPosition=$AT" -H "Authorization: Bearer $SU"
# -> {"enabled":{"caseManagers":1,"vendorCaseManagers":0,"corpUsers":0,"foreignNationals":0},"enrolled":{"caseManagers":1,"vendorCaseManagers":0,"corpUsers":0,"foreignNationals":0}}
curl -s -w '\n' "$API/mfa/enrolled-users?search=ada&role=case-manager&limit=20&minPosition=$AT" \
  -H "Authorization: Bearer $SU"
# -> {"items":[{"userId":"cm-1","name":"Ada Lovelace",…,"factors":["totp"],…,"enforced":true}],"nextCursor":null}
# (next page: add &cursor=<nextCursor>)

# The host registers the corporations its users belong to; the admin's picker searches them.
GLOBEX=$(curl -s -X PUT $API/corporations/globex -H "Authorization: Bearer $HOST" \
  -H 'content-type: application/json' -d '{"name":"Globex Corporation"}')
echo "$GLOBEX"
# -> {"position":"…","corporationId":"globex","name":"Globex Corporation"}
AT=$(node -pe 'JSON.parse(process.argv[1]).position' "$GLOBEX")
curl -s -w '\n' "$API/corporations?search=glob&minPosition=$AT" -H "Authorization: Bearer $SU"
# -> {"items":[{"corporationId":"globex","name":"Globex Corporation","corpUsers":0,"foreignNationals":0}],"nextCursor":null}

# Each consumer's position and lag, and counts of quarantined and skipped events;
# an operator also sees the events themselves, if any.
curl -s -w '\n' $BASE/health
# -> {"status":"ok",…,"projections":[{"name":"enrolled-users","status":"live",…,"quarantined":0,"skipped":0},…}
curl -s -w '\n' $BASE/health -H "Authorization: Bearer $OP"
# -> {"status":"ok",…"quarantinedEvents":[],"skippedEvents":[]},…}

# A firm admin resets cm-1's enrollment (a lost phone): every factor stops
# working at once, the seat is free, and cm-1 leaves the enrolled users.
BEFORE_RESET=$(node -p 'new Date().toISOString()')
RESET=$(curl -s -X POST $API/users/cm-1/mfa/reset -H "Authorization: Bearer $SU" \
  -H 'content-type: application/json' -d '{"reason":"Lost phone"}')
echo "$RESET"
# -> {"position":"…","factorsRemoved":1}
AT=$(node -pe 'JSON.parse(process.argv[1]).position' "$RESET")
curl -s -w '\n' "$API/mfa/usage?minPosition=$AT" -H "Authorization: Bearer $SU"
# -> {"status":"active","licenseCount":50,"seatsInUse":0,"unutilized":50,"usagePercent":0}
curl -s -w '\n' "$API/mfa/enrolled-users?search=ada&minPosition=$AT" -H "Authorization: Bearer $SU"
# -> {"items":[],"nextCursor":null}
curl -s -w '\n' $API/users/cm-1/mfa/login-requirement -H "Authorization: Bearer $HOST"
# -> {"decision":"enroll",…}
# == auditors ==
AU=$(npm run -s token -- --role auditor --firm acme)
curl -s $BASE/v1/audit/firms/acme/events -H "Authorization: Bearer $AU" > $DATA_DIR/acme.ndjson
tail -n 1 $DATA_DIR/acme.ndjson
# -> {"trailer":{"firmId":"acme",…}}
# The dashboards as they stood before the reset, rebuilt from the log.
curl -s -w '\n' "$BASE/v1/audit/firms/acme/state?asOf=$BEFORE_RESET" -H "Authorization: Bearer $AU"
# -> {"asOf":"…","position":"…","usage":{"status":"active","licenseCount":50,"seatsInUse":1,"unutilized":49,"usagePercent":2},…,"enrolledUsers":[{"userId":"cm-1",…}]}
npm run -s audit -- export --firm acme --type FactorConfirmed,EnrollmentReset > $DATA_DIR/resets.ndjson
grep -o '"type":"[A-Za-z]*"' $DATA_DIR/resets.ndjson   # one event a line, then the trailer
# -> "type":"FactorConfirmed"
# -> "type":"EnrollmentReset"
npm run -s audit -- state --firm acme --as-of "$BEFORE_RESET"   # the same, pretty-printed
# -> {
# ->   "asOf": "…",
# ->   "position": "…",
# ->   "usage": {
# ->     "status": "active",
# ->     "licenseCount": 50,
# ->     "seatsInUse": 1,
# -> …
# -> }
npm run -s audit -- verify --file $DATA_DIR/acme.ndjson   # exit 0; 1 when the file was altered
# -> {"ok":true,"eventsChecked":…}
# == notifications ==
# cm-1, a billing contact, was invited to enroll when registered. One license:
# cm-1's next enrollment (the same two steps as above) uses 100 % of them,
# which sends the 80 % and the 100 % emails to cm-1.
curl -s -w '\n' -X PUT $API/mfa/licenses -H "Authorization: Bearer $OP" \
  -H 'content-type: application/json' -d '{"licenseCount":1}'
# -> {"position":"…","status":"active","plan":"standard","licenseCount":1}
START=$(curl -s -X POST $API/users/cm-1/mfa/totp/enrollment -H "Authorization: Bearer $HOST" \
  -H 'content-type: application/json' -d '{"label":"New phone"}')
ENROLLMENT=$(node -pe 'JSON.parse(process.argv[1]).enrollmentId' "$START")
SECRET=$(node -pe 'new URL(JSON.parse(process.argv[1]).otpauthUri).searchParams.get("secret")' "$START")
curl -s -w '\n' -X POST $API/users/cm-1/mfa/totp/enrollment/$ENROLLMENT/confirm \
  -H "Authorization: Bearer $HOST" -H 'content-type: application/json' \
  -d "{\"code\":\"$(oathtool --totp -b $SECRET)\"}"
# -> {"position":"…","factorId":"…"}

# The mailer sends in the background: wait (at most 10 s) until the three files
# are written and recorded as sent (no email pending).
for _ in $(seq 100); do
  [ "$(ls "$DATA_DIR/outbox" 2>/dev/null | wc -l)" -ge 3 ] &&
    curl -s $BASE/health | grep -q '"pending":0' && break
  sleep 0.1
done
ls "$DATA_DIR/outbox"   # <Message-ID>.eml, one per email
# -> …@localhost.eml
# -> …@localhost.eml
# -> …@localhost.eml
grep -hi '^x-mfa-notification' "$DATA_DIR/outbox"/*.eml | sort
# -> X-Mfa-Notification: enrollment-invitation
# -> X-Mfa-Notification: license-usage-100
# -> X-Mfa-Notification: license-usage-80
curl -s -w '\n' $BASE/health -H "Authorization: Bearer $OP"
# -> {"status":"ok",…"mail":{"transport":"outbox",…"pending":0,…}
