#!/usr/bin/env python3
"""Measures what the S3 object layout depends on, against the engine in S3_ENDPOINT (boto3, one client):
PUT/GET throughput by object size, per-request latency of small PUTs and of ranged GETs inside a big object,
listing cost, and whether parts under 5 MiB are accepted. Prints one line per figure. Used for
Protocol/store-s3.md; run by hand:  python3 Tests/s3-bench/layout.py"""
import os, statistics, sys, time
import boto3
from botocore.config import Config

s3 = boto3.client('s3', endpoint_url=os.environ['S3_ENDPOINT'], region_name=os.environ.get('S3_REGION', 'us-east-1'),
                  aws_access_key_id=os.environ['AWS_ACCESS_KEY_ID'],
                  aws_secret_access_key=os.environ['AWS_SECRET_ACCESS_KEY'],
                  config=Config(s3={'addressing_style': 'path'}, retries={'max_attempts': 1}))
B = 'alx-layout-bench'
KiB, MiB = 1 << 10, 1 << 20
s3.create_bucket(Bucket=B)
print('loadavg', open('/proc/loadavg').read().split()[:3])
blob = os.urandom(64 * MiB)

def pct(xs, p): xs = sorted(xs); return xs[min(len(xs) - 1, int(p * len(xs)))]

for size, n in [(256 * KiB, 40), (1 * MiB, 20), (4 * MiB, 10), (16 * MiB, 5), (64 * MiB, 3)]:
    body = blob[:size]
    t = time.time()
    for i in range(n): s3.put_object(Bucket=B, Key='size/%d/%d' % (size, i), Body=body)
    put = time.time() - t
    t = time.time()
    for i in range(n): s3.get_object(Bucket=B, Key='size/%d/%d' % (size, i))['Body'].read()
    get = time.time() - t
    print('object %6d KiB x%-3d PUT %6.1f MiB/s (%5.1f ms/req)  GET %6.1f MiB/s (%5.1f ms/req)' % (
        size // KiB, n, size * n / MiB / put, put / n * 1000, size * n / MiB / get, get / n * 1000))

lat = []
for i in range(100):
    t = time.time(); s3.put_object(Bucket=B, Key='tiny/%03d' % i, Body=b'x' * 100); lat.append(time.time() - t)
print('PUT 100 B: p50 %.1f ms p90 %.1f ms' % (pct(lat, .5) * 1000, pct(lat, .9) * 1000))
lat = []
for i in range(100):
    t = time.time(); s3.head_object(Bucket=B, Key='tiny/%03d' % i); lat.append(time.time() - t)
print('HEAD: p50 %.1f ms p90 %.1f ms' % (pct(lat, .5) * 1000, pct(lat, .9) * 1000))

import random
random.seed(1)
for rl in (64 * KiB, 1 * MiB):
    lat = []
    for i in range(60):
        off = random.randrange(0, 64 * MiB - rl)
        t = time.time()
        b = s3.get_object(Bucket=B, Key='size/%d/0' % (64 * MiB), Range='bytes=%d-%d' % (off, off + rl - 1))['Body'].read()
        lat.append(time.time() - t); assert b == blob[off:off + rl]
    print('range GET %4d KiB in a 64 MiB object: p50 %.1f ms p90 %.1f ms' % (rl // KiB, pct(lat, .5) * 1000, pct(lat, .9) * 1000))
# a ranged GET in a multipart (SLO) object
m = s3.create_multipart_upload(Bucket=B, Key='mpu')
parts = []
for n in range(1, 5):
    r = s3.upload_part(Bucket=B, Key='mpu', UploadId=m['UploadId'], PartNumber=n, Body=blob[(n - 1) * 16 * MiB:n * 16 * MiB])
    parts.append({'PartNumber': n, 'ETag': r['ETag']})
s3.complete_multipart_upload(Bucket=B, Key='mpu', UploadId=m['UploadId'], MultipartUpload={'Parts': parts})
lat = []
for i in range(60):
    off = random.randrange(0, 64 * MiB - 64 * KiB)
    t = time.time()
    b = s3.get_object(Bucket=B, Key='mpu', Range='bytes=%d-%d' % (off, off + 64 * KiB - 1))['Body'].read()
    lat.append(time.time() - t); assert b == blob[off:off + 64 * KiB]
print('range GET   64 KiB in a 64 MiB multipart object (4x16 MiB): p50 %.1f ms p90 %.1f ms' % (pct(lat, .5) * 1000, pct(lat, .9) * 1000))

# minimum part size
m = s3.create_multipart_upload(Bucket=B, Key='small-parts')
p1 = s3.upload_part(Bucket=B, Key='small-parts', UploadId=m['UploadId'], PartNumber=1, Body=blob[:1 * MiB])
p2 = s3.upload_part(Bucket=B, Key='small-parts', UploadId=m['UploadId'], PartNumber=2, Body=blob[:1 * MiB])
try:
    s3.complete_multipart_upload(Bucket=B, Key='small-parts', UploadId=m['UploadId'],
                                 MultipartUpload={'Parts': [{'PartNumber': 1, 'ETag': p1['ETag']}, {'PartNumber': 2, 'ETag': p2['ETag']}]})
    print('multipart with a 1 MiB first part: accepted')
except Exception as e:
    print('multipart with a 1 MiB first part: rejected: %s' % e)
    s3.abort_multipart_upload(Bucket=B, Key='small-parts', UploadId=m['UploadId'])

# listing cost: 1000 keys per page
for i in range(100, 1000): s3.put_object(Bucket=B, Key='tiny/%03d' % i, Body=b'x')
lat = []
for _ in range(10):
    t = time.time(); r = s3.list_objects_v2(Bucket=B, Prefix='tiny/', MaxKeys=1000); lat.append(time.time() - t)
    assert r['KeyCount'] == 1000
print('ListObjectsV2 page of 1000 keys: p50 %.1f ms' % (pct(lat, .5) * 1000))

keys = [o['Key'] for p in s3.get_paginator('list_objects_v2').paginate(Bucket=B) for o in p.get('Contents', [])]
import base64, hashlib
def add_md5(request, **kw):
    request.headers['Content-MD5'] = base64.b64encode(hashlib.md5(request.body).digest()).decode()
s3.meta.events.register('before-sign.s3.DeleteObjects', add_md5)
for i in range(0, len(keys), 1000): s3.delete_objects(Bucket=B, Delete={'Objects': [{'Key': k} for k in keys[i:i + 1000]]})
s3.delete_bucket(Bucket=B)
print('loadavg', open('/proc/loadavg').read().split()[:3])
