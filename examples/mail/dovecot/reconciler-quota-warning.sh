#!/bin/sh
# Dovecot's quota-warning service (90-reconciler.conf): when a delivery takes a mailbox past 90 %
# or 100 % of its quota, put a warning in its inbox (HG-2024 Đ9.2.d). Arguments: PERCENT USER.
# The warning itself is saved without enforcing the quota, so that it always arrives.
set -eu
percent=$1
user=$2
if [ "$percent" -ge 100 ]; then
  subject='=?UTF-8?B?SOG7mXAgdGjGsCDEkcOjIMSR4bqneQ==?='   # Hộp thư đã đầy
else
  subject='=?UTF-8?B?SOG7mXAgdGjGsCBz4bqvcCDEkeG6p3kgKEhHLTIwMjQgxJA5LjIuZCk=?='   # Hộp thư sắp đầy (HG-2024 Đ9.2.d)
fi
/usr/lib/dovecot/dovecot-lda -c @DOVECOT_CONF@ -d "$user" -o "plugin/quota=count:User quota:noenforcing" <<MAIL
From: postmaster@@DOMAIN@
To: $user
Subject: $subject
Auto-Submitted: auto-generated
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hộp thư $user đã dùng $percent% dung lượng được cấp. Hãy xoá bớt thư cũ hoặc
thư có tệp đính kèm lớn; khi hộp thư đầy, thư gửi đến sẽ bị trả lại.

The mailbox $user has used $percent% of its quota. Delete old messages or large
attachments: once it is full, incoming mail is returned to its senders.
MAIL
