import sys, collections, re
cats = [
 ('lz4', r'LZ4_'), ('turbofan', r'OptimizingCompileDispatcher|compiler::'),
 ('startup-compile', r'Parser|Scanner::|Compiler::Compile|BytecodeGenerator|Deserializ|CodeSerializer|compileForInternalLoader'),
 ('gear', r'scan_zero|next_cut|chunkyard::scan'), ('blake3', r'blake3'),
 ('read', r'ksys_read|vfs_read'), ('memmove', r'relaxed_memmove|__memmove'),
 ('write', r'ksys_write|vfs_write|do_writev|__x64_sys_writev'),
 ('gc+sched+pf+fsync+leveldb-native', r'Heap::|Scavenge|MarkCompact|ConcurrentMarking|Sweeper|heap::|futex|sched_yield|schedule|epoll|rayon_core|crossbeam|page_fault|clear_page|fsync|fdatasync|leveldb|classic-level|munmap|mmap|madvise|mprotect'),
 ('js', r'JS:|Builtins_|Runtime_|v8::|node::|uv_'),
]
comp=[(n,re.compile(p)) for n,p in cats]
cnt=collections.Counter(); st=[]; total=0
def fl():
    global total
    if not st: return
    total+=1; s='\n'.join(st)
    for n,rx in comp:
        if rx.search(s): cnt[n]+=1; return
    cnt['other']+=1
for l in sys.stdin:
    if not l.strip(): fl(); st.clear(); continue
    if l[0] in ' \t': st.append(l.strip())
fl()
for n,_ in cats+[('other','')]: print(f'{n:36s} {cnt[n]/999:6.3f}')
print('total', round(total/999,3))
