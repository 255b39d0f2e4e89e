import json,os,struct,sys,glob
def load(store):
    snaps=[json.load(open(f)) for f in glob.glob(store+'/snapshots/*.json')]
    snaps.sort(key=lambda s:s['time'])
    out=[]
    for s in snaps:
        b=open(store+'/'+s['recipe']['name'],'rb').read()
        n,=struct.unpack_from('<Q',b,len(b)-32)
        # pack table: find via footer; simpler: parse footer fields
        ents=[];pos=0
        for i in range(n):
            o=16+52*i
            fp=b[o:o+32].hex();pr,off,st,raw=struct.unpack_from('<IIII',b,o+32);codec=b[o+48];fl=b[o+49]
            e=dict(i=i,fp=fp,pr=pr,off=off,st=st,raw=raw,codec=codec,base=fl&1,pos=pos)
            if not fl&1: pos+=raw
            ents.append(e)
        out.append((s,ents))
    return out
def packs(store, s):
    b=open(store+'/'+s['recipe']['name'],'rb').read()
    n,lb,m,se=struct.unpack_from('<QQII',b,len(b)-32)
    k=(n+se-1)//se
    at=16+52*n+40*k
    return [b[at+16*i:at+16*i+16].hex() for i in range(m)]
