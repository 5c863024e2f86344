import sys, statistics as st, collections
d = collections.defaultdict(lambda: collections.defaultdict(list)); order=[]
for line in open(sys.argv[1]):
    w = line.split()
    if len(w) < 3: continue
    v = w[0]
    if v not in order: order.append(v)
    for k, x in zip(w[1::2], w[2::2]):
        try: d[k][v].append(float(x))
        except ValueError: pass
print(f"{'measure':10}" + "".join(f"{v:>10}" for v in order) + "".join(f"{v[:4]+'/nat':>10}" for v in order[1:]))
for k, by in d.items():
    m = {v: st.median(by[v]) for v in by}
    print(f"{k:10}" + "".join(f"{m.get(v,0):10.2f}" for v in order) + "".join(f"{m.get(v,0)/m['native']:10.2f}" for v in order[1:]) + f"  n={len(by['native'])}")
