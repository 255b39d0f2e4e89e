import sys,subprocess,os
sys.path.insert(0,'.')
from recipes import load
g=load(sys.argv[1]); G=int(sys.argv[2])  # analyze generation G (1-based)
D='/tmp/chunkyard-bench-data/dumps/gen-%02d.sql'
fp1={}
for gi in range(G-1):
  for e in g[gi][1]:
    if not e['base']: fp1.setdefault(e['fp'],(gi+1,e))
ents=g[G-1][1]
rows=[]
for k,e in enumerate(ents):
  if e['codec']!=3: continue
  bg,b=fp1[ents[k-1]['fp']]
  rows.append((e['st'],e,bg,b))
rows.sort(key=lambda r:-r[0])
sel=rows[:8]+rows[len(rows)//2:len(rows)//2+4]
def rd(path,pos,n):
  with open(path,'rb') as f: f.seek(max(0,pos)); return f.read(n)
def zs(data,base=None):
  open('/tmp/delta-work/c','wb').write(data)
  args=['zstd','-3','-q','-c','--long=27']
  if base is not None:
    open('/tmp/delta-work/b','wb').write(base); args+=['--patch-from=/tmp/delta-work/b']
  return len(subprocess.run(args+['/tmp/delta-work/c'],capture_output=True).stdout)
print('stored  chunkpos  raw  base(gen,pos-diff) | zstd-3 patch vs stored base | vs prev-gen same region | vs gen1 same region | whole zstd-3')
for st,e,bg,b in sel:
  c=rd(D%G,e['pos'],e['raw'])
  base=rd(D%bg,b['pos'],b['raw'])
  prev=rd(D%(G-1),e['pos'],e['raw'])
  g1=rd(D%1,e['pos'],e['raw'])
  print(st,e['pos'],e['raw'],(bg,b['pos']-e['pos']),'|',zs(c,base),'|',zs(c,prev),'|',zs(c,g1),'|',zs(c))
