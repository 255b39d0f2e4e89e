import json,sys
log=json.load(open(sys.argv[1]))
log.sort()
t_end=max(e[1] for e in log); t_first=min(e[0] for e in log)
# busy intervals
iv=sorted((e[0],e[1]) for e in log)
busy=0; cur=None
gaps=[]
for s,e in iv:
  if cur is None: cur=[s,e]; continue
  if s>cur[1]: busy+=cur[1]-cur[0]; gaps.append((cur[1],s)); cur=[s,e]
  else: cur[1]=max(cur[1],e)
busy+=cur[1]-cur[0]
from collections import Counter
c=Counter((e[2], 'big' if e[3]>=1<<20 else 'small') for e in log)
print(sys.argv[1], 'requests',len(log), dict(c), 'span ms',t_end-t_first,'busy ms',busy, 'gaps>50ms',[(a,b-a) for a,b in gaps if b-a>50])
# bytes-in-flight timeline: count of big PUTs concurrently
big=[(e[0],e[1]) for e in log if e[3]>=1<<20]
print(' big PUT total ms', sum(b-a for a,b in big), 'mean ms', round(sum(b-a for a,b in big)/max(1,len(big))))
print(' last 8:', [(e[0],e[1]-e[0],e[2],e[3],e[5]) for e in log[-8:]])
