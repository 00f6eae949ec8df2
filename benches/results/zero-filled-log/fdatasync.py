#!/usr/bin/env python3
# Three writers appending 3,000-byte records with an fdatasync after each, into space reserved
# 2 MiB at a time the way raft-engine does: by fallocate, or by writing zeros (the zero-filled
# log). A fourth process writes 1 MiB every 30 ms without syncing, like RocksDB. Prints mean
# microseconds per record and the worst writer's p99 for each mode, twice, alternately.
# Usage: python3 benches/results/zero-filled-log/fdatasync.py [dir]  (default /tmp; use a disk, not tmpfs)
import sys
DIR = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
import os, time, sys
from multiprocessing import Process, Queue
CH=2*1024*1024
ZERO=b'\0'*CH
def worker(name, mode, q):
    path = f"{DIR}/fsync_{name}"
    fd = os.open(path, os.O_RDWR|os.O_CREAT|os.O_TRUNC)
    n=1500; buf=b'x'*3000; cap=0; off=0
    lat=[]
    t=time.time()
    for i in range(n):
        if off+len(buf)>cap:
            if mode=='fallocate': os.posix_fallocate(fd,cap,CH)
            else: os.pwrite(fd, ZERO, cap)
            cap+=CH
        t0=time.time()
        os.pwrite(fd, buf, off); off+=len(buf); os.fdatasync(fd)
        lat.append(time.time()-t0)
    q.put(((time.time()-t)/n, sorted(lat)[int(n*0.99)]))
    os.close(fd); os.unlink(path)
def bg(stop):
    fd=os.open(DIR+"/fsync_bg", os.O_RDWR|os.O_CREAT|os.O_TRUNC)
    b=b"z"*(1<<20)
    for i in range(600):
        os.write(fd,b); time.sleep(0.03)
    os.close(fd); os.unlink(DIR+"/fsync_bg")
for mode in ['fallocate','zero','fallocate','zero']:
    q=Queue(); ps=[Process(target=worker,args=(f"{mode}{i}",mode,q)) for i in range(3)]
    b=Process(target=bg,args=(None,)); b.start()
    [p.start() for p in ps]; [p.join() for p in ps]; b.terminate(); b.join()
    r=[q.get() for _ in ps]
    print(mode, 'mean us/op', int(sum(x[0] for x in r)/3*1e6), 'p99 ms', round(max(x[1] for x in r)*1e3,2))
