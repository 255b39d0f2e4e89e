# Delta frames of the newest backup in a store: per delta chunk, blob header, frame header, literals, sequences.
# python3 frames.py STORE  (parses pack tables and zstd block headers; used for docs/benchmarks.md, third delta build)
import os, struct, sys, glob, statistics
root=sys.argv[1]; n_newest=int(sys.argv[2]) if len(sys.argv)>2 else 1
packs=sorted(glob.glob(root+'/packs/*/*.pack'), key=os.path.getmtime)
# group by backup: take packs modified in last-N backup windows: use snapshot manifest times? approximate: newest packs within 2 s of newest
newest=os.path.getmtime(packs[-1])
sel=[p for p in packs if newest-os.path.getmtime(p)<0.8]
tot=dict(n=0,stored=0,frame=0,fhdr=0,lit=0,litraw=0,seq=0,blocks=0,nondelta=0,nondelta_bytes=0,table=0,packhdr=0)
def lit_section(b):
    t=b[0]&3; sf=(b[0]>>2)&3
    if t in (0,1):
        if sf in (0,2): return 1,b[0]>>3, (b[0]>>3) if t==0 else 1
        if sf==1: sz=(b[0]>>4)|(b[1]<<4); return 2,sz, sz if t==0 else 1
        sz=(b[0]>>4)|(b[1]<<4)|(b[2]<<12); return 3,sz, sz if t==0 else 1
    # compressed
    if sf in (0,1):
        v=b[0]|(b[1]<<8)|(b[2]<<16); r=(v>>4)&0x3ff; c=(v>>14)&0x3ff; return 3+c-c, r, c  # header 3
    if sf==2:
        v=int.from_bytes(b[:4],'little'); r=(v>>4)&0x3fff; c=(v>>18)&0x3fff; return 4,r,c
    v=int.from_bytes(b[:5],'little'); r=(v>>4)&0x3ffff; c=(v>>22)&0x3ffff; return 5,r,c
sizes=[]; lits=[]; fhs=[]
for p in sel:
    d=open(p,'rb').read()
    cnt,_,toff=struct.unpack_from('<IIQ',d,len(d)-40)
    tot['table']+=48*cnt+40; tot['packhdr']+=32
    for i in range(cnt):
        fp,off,sl,rl,codec=struct.unpack_from('<32sIIIB',d,toff+48*i)
        if codec!=3: tot['nondelta']+=1; tot['nondelta_bytes']+=sl; continue
        tot['n']+=1; tot['stored']+=sl
        f=d[off+48:off+sl]; tot['frame']+=len(f)
        fhd=f[4]; fcs_flag=fhd>>6; single=(fhd>>5)&1; chk=(fhd>>2)&1; did=fhd&3
        h=5+(0 if single else 1)+[0,1,2,4][did]+[ (1 if single else 0),2,4,8][fcs_flag]
        tot['fhdr']+=h+(4 if chk else 0); fhs.append((h,chk))
        pos=h
        while True:
            bh=int.from_bytes(f[pos:pos+3],'little'); last=bh&1; bt=(bh>>1)&3; bs=bh>>3; pos+=3; tot['blocks']+=1
            if bt==2:
                hl,r,c=lit_section(f[pos:pos+5])
                ltype=f[pos]&3
                litbytes = hl + (c if ltype in (0,2,3) else 1)
                tot['lit']+=litbytes; tot['litraw']+=r; tot['seq']+=bs-litbytes
            else:
                tot['lit']+=bs if bt==0 else 1
            pos+= bs if bt!=1 else 1
            if last: break
        sizes.append(sl)
print(len(sel),'packs', tot)
print('per delta: stored %.0f, frame %.0f, frame hdr %.1f, lit %.0f (raw %.0f), seq %.0f, blocks %.2f' % (tot['stored']/tot['n'], tot['frame']/tot['n'], tot['fhdr']/tot['n'], tot['lit']/tot['n'], tot['litraw']/tot['n'], tot['seq']/tot['n'], tot['blocks']/tot['n']))
print('median stored', statistics.median(sizes), 'checksum flags', sum(c for _,c in fhs))
