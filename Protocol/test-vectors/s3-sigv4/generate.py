#!/usr/bin/env python3
"""SigV4 (S3 flavour) test vectors from botocore's own signer, an implementation independent of ours.

Run once; the output is deterministic (fixed clock, fixed keys):
    python3 Protocol/test-vectors/s3-sigv4/generate.py
It writes vectors.json beside this file. AlexandriaObjectStoreTests reads it and checks that our signer produces
the same canonical request, string to sign and Authorization header for each case.

Each case gives the request as our client sends it: the method, the raw object key (the test encodes it with our
path encoder and checks the result against `path`, the encoding botocore signed), the query parameters as
decoded (name, value) pairs, the headers before signing, and the payload SHA-256 that goes into
x-amz-content-sha256. botocore sorts, encodes and canonicalises; we compare all three of its outputs.
"""
import datetime
import hashlib
import json
import os
import urllib.parse

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

NOW = datetime.datetime(2026, 11, 29, 23, 5, 9, tzinfo=datetime.timezone.utc)
botocore.auth.get_current_datetime = lambda *a, **k: NOW.replace(tzinfo=None)

ENDPOINT = 'http://127.0.0.1:9000'
ACCESS, SECRET = 'test:tester', 'testing'


def encode_path(bucket, key):
    # RFC 3986 unreserved characters stay, '/' stays, everything else (UTF-8) is %XX: what S3 signs.
    p = '/' + urllib.parse.quote(bucket, safe='-_.~')
    if key is not None:
        p += '/' + urllib.parse.quote(key, safe='/-_.~')
    return p


def case(name, method, bucket, key, params=(), headers=(), body=b'', region='us-east-1',
         secret=SECRET, access=ACCESS):
    path = encode_path(bucket, key)
    payload = hashlib.sha256(body).hexdigest()
    hdrs = [('Host', '127.0.0.1:9000')] + list(headers) + [('X-Amz-Content-SHA256', payload)]
    req = AWSRequest(method=method, url=ENDPOINT + path, data=body, params=list(params), headers=dict(hdrs))
    signer = botocore.auth.S3SigV4Auth(Credentials(access, secret), 's3', region)
    canonical = None
    sts = None
    orig_sts = signer.string_to_sign

    def capture(request, cr):
        nonlocal canonical, sts
        canonical = cr
        sts = orig_sts(request, cr)
        return sts
    signer.string_to_sign = capture
    signer.add_auth(req)
    return {
        'name': name, 'method': method, 'bucket': bucket, 'key': key, 'path': path,
        'query': [[k, v] for k, v in params], 'headers': [[k, v] for k, v in hdrs],
        'payloadSHA256': payload, 'region': region, 'accessKey': access, 'secretKey': secret,
        'amzDate': req.headers['X-Amz-Date'], 'canonicalRequest': canonical, 'stringToSign': sts,
        'authorization': req.headers['Authorization'],
    }


cases = [
    case('list buckets', 'GET', 'b', None, params=[]),
    case('get object', 'GET', 'alexandria', 'packs/0a/0a1b.pack'),
    case('ranged get', 'GET', 'alexandria', 'packs/ab.pack', headers=[('Range', 'bytes=1024-2047')]),
    case('head object', 'HEAD', 'alexandria', 'lease'),
    case('put object with body', 'PUT', 'alexandria', 'lease', body=b'{"holder":"node-a","expires":1}',
         headers=[('Content-Length', '31'), ('Content-Type', 'application/octet-stream')]),
    case('unicode, spaces and reserved characters in the key', 'PUT', 'alexandria',
         'dir one/naïve+plus=eq&amp;~tilde*star(paren).bin', body=b'x', headers=[('Content-Length', '1')]),
    case('list objects v2, first page', 'GET', 'alexandria', None,
         params=[('list-type', '2'), ('prefix', 'mirror/packs/'), ('max-keys', '1000')]),
    case('list objects v2, continuation token needs encoding', 'GET', 'alexandria', None,
         params=[('list-type', '2'), ('prefix', 'a b/'), ('continuation-token', 'bWlycm9y/L3BhY2tz+Lw=='),
                 ('delimiter', '/')]),
    case('create multipart upload (empty value)', 'POST', 'alexandria', 'packs/x.pack', params=[('uploads', '')]),
    case('upload part', 'PUT', 'alexandria', 'packs/x.pack',
         params=[('partNumber', '3'), ('uploadId', 'MzRhYjk0ZjUtYzU2Ni00YjA0LWFiZjctYzM5MjU3ZmIwMWQ5')],
         body=b'\x00' * 4096, headers=[('Content-Length', '4096')]),
    case('delete objects with Content-MD5', 'POST', 'alexandria', None, params=[('delete', '')],
         body=b'<Delete><Object><Key>a</Key></Object></Delete>',
         headers=[('Content-MD5', 'nVkYcPLn0QAdpoBfXqZbKg=='), ('Content-Length', '46')]),
    case('list multipart uploads with prefix', 'GET', 'alexandria', None,
         params=[('uploads', ''), ('prefix', 'mirror/')]),
    case('header value whitespace is collapsed', 'GET', 'alexandria', 'k',
         headers=[('X-Amz-Meta-Note', '  two   spaces  ')]),
    case('other region and secret', 'GET', 'alexandria', 'k', region='eu-central-1',
         secret='wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', access='AKIDEXAMPLE'),
    case('empty body PUT with a longer key', 'PUT', 'alexandria', 'mirror/packs/%s.pack' % ('ab' * 32),
         headers=[('Content-Length', '0')]),
]

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'vectors.json')
with open(out, 'w') as f:
    json.dump({'generator': 'botocore %s S3SigV4Auth' % botocore.__version__, 'service': 's3', 'cases': cases},
              f, indent=1, ensure_ascii=False)
    f.write('\n')
print('wrote %d cases to %s' % (len(cases), out))
