#!/bin/sh
# The include rule of gateway/ARCHITECTURE.md ("Floors and the rule"): a wing
# includes its own headers and those of the floors below it (core < aws < ssh
# < ssm, core < front; front and ssm never meet), and a library header stays
# in its home. A header's wing is the folder it lives in. Prints file:line and
# the rule broken; exits 1 on any. App files (gateway/*.c) may include anything.
set -u
cd "${SSMGATE_SOURCE_DIR:-$(dirname "$0")/..}/gateway" || exit 2
# Pure files (codecs, parsers, decisions) and their headers: no event loop.
pure=" core/config core/account core/target core/tunnel core/buf core/proxy front/socks front/httpconnect
 front/http1 front/httpfwd front/route front/front_reply aws/aws_sigv4 aws/aws_parse aws/aws_xml aws/aws_ec2_parse aws/aws_endpoint
 aws/aws_proto aws/aws_chain aws/aws_error aws/aws_profile_env aws/aws_limiter ssm/dc_msg
 ssm/dc_hs ssm/dc_pace ssm/dc_reorder ssm/smux ssm/ssm_mode ssm/ssm_names "
pure=" $(echo $pure) " # one space between names
out=$(for f in core/*.[ch] aws/*.[ch] ssh/*.[ch] ssm/*.[ch] front/*.[ch]; do
    [ -f "$f" ] || continue
    w=${f%%/*}
    grep -n '^[[:space:]]*#[[:space:]]*include' "$f" |
        sed 's/^\([0-9]*\):[^"<]*\(["<]\)\([^">]*\).*/\1 \2 \3/' |
    while read -r n q h; do
        if [ "$q" = '"' ]; then
            d=$(for x in */"$h"; do [ -f "$x" ] && echo "${x%%/*}"; done)
            case "$w:${d:-app}/$h" in
            "$w:$w"/* | *:core/* | ssh:aws/aws_ec2ic.h | ssm:aws/aws.h | \
                ssm:aws/aws_ssm.h | ssm:aws/aws_ec2.h | ssm:ssh/keypush.h) continue ;;
            esac
            why="\"$h\" is in ${d:-app}/, not a floor of $w/"
        else
            case "$h:$f:$pure" in
            curl/*:aws/http.c:* | libwebsockets.h:ssm/ws.c:* | \
                ini.h:core/config.c:* | ini.h:aws/aws_profile.c:* | \
                libxml/*:aws/aws_xml.c:*) continue ;;
            curl/* | libwebsockets.h:* | ini.h:* | libxml/*) why="<$h> outside its home" ;;
            uv.h:*" ${f%.?} "*) why="<uv.h> in a pure file" ;;
            jansson.h:core/* | jansson.h:front/*) why="<jansson.h> in $w/" ;;
            *) continue ;;
            esac
        fi
        echo "gateway/$f:$n: $why"
    done
done)
[ -z "$out" ] && exit 0
printf 'layers: include rule broken (gateway/ARCHITECTURE.md):\n%s\n' "$out"
exit 1
