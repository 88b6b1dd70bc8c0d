#!/usr/bin/env python3
"""Independent check of metrics.json against predictions.csv (docs/design.md, Metrics), to 1e-3.

Usage: python3 trainer/tests/check_metrics.py artifacts/predictions.csv artifacts/metrics.json
Needs numpy and scikit-learn (pip install numpy scikit-learn). AUROC and average precision come
from scikit-learn; ECE uses torch.linspace's float32 edges with torchmetrics' right-closed
bucketize; aECE numpy's array_split (= torch.tensor_split); FPR95 the formula torch-uncertainty
translated (closest recall to 0.95). Exits 1 if any metric differs by 1e-3 or more.
"""
import csv, json, math, sys
import numpy as np
from sklearn.metrics import roc_auc_score, average_precision_score
rows = list(csv.DictReader(open(sys.argv[1])))
m = json.load(open(sys.argv[2]))
def arr(ds):
    r = [x for x in rows if x['dataset']==ds]
    P = np.array([[float(x[f'p{c}']) for c in range(10)] for x in r], dtype=np.float32)
    y = np.array([int(x['label']) for x in r])
    mi = np.array([float(x['mi']) for x in r])
    return P, y, mi
P, y, mi = arr('mnist')
Pd = P.astype(np.float64)
pred = P.argmax(1); conf = P.max(1)
acc = (pred==y).mean()
nll = -np.log(np.maximum(Pd[np.arange(len(y)), y], 1e-12)).mean()
onehot = np.eye(10)[y]
brier = ((Pd-onehot)**2).sum(1).mean()
def H(Pd):
    with np.errstate(divide='ignore', invalid='ignore'):
        t = np.where(Pd>0, -Pd*np.log(Pd), 0.0)
    return t.sum(1)
ent = H(Pd).mean()
# torch linspace f32 edges
step = np.float32(1)/np.float32(15)
edges = np.array([step*np.float32(i) if i<8 else np.float32(1)-step*np.float32(15-i) for i in range(16)], dtype=np.float32)
idx = np.searchsorted(edges, conf, side='right')-1
ece=0.0
for b in range(16):
    s = idx==b
    if s.any(): ece += s.mean()*abs((pred[s]==y[s]).mean()-conf[s].astype(np.float64).mean())
order = np.argsort(conf, kind='stable'); cs = conf[order]; ok = (pred==y)[order]
aece=0.0
for chunk_c, chunk_a in zip(np.array_split(cs,15), np.array_split(ok,15)):
    aece += len(chunk_c)/len(cs)*abs(chunk_a.mean()-chunk_c.astype(np.float64).mean())
out = {'acc':acc,'nll':nll,'brier':brier,'ece':ece,'aece':aece,'entropy':ent,'mi':mi.mean()}
if any(x['dataset']=='fashion' for x in rows):
    Po, yo, mio = arr('fashion')
    lab = np.r_[np.zeros(len(y)), np.ones(len(yo))]
    msp = -np.r_[conf, Po.max(1)].astype(np.float64)
    out['ood_auroc'] = roc_auc_score(lab, msp)
    out['ood_aupr'] = average_precision_score(lab, msp)
    out['ood_auroc_entropy'] = roc_auc_score(lab, np.r_[H(Pd), H(Po.astype(np.float64))])
    out['ood_auroc_mi'] = roc_auc_score(lab, np.r_[mi, mio])
    # hendrycks fpr_and_fdr_at_recall (the reference torch-uncertainty translated)
    o = np.argsort(msp, kind='mergesort')[::-1]; s = msp[o]; t = lab[o]
    dvi = np.where(np.diff(s))[0]; thr = np.r_[dvi, t.size-1]
    tps = np.cumsum(t)[thr]; fps = 1+thr-tps
    rec = tps/tps[-1]; last = tps.searchsorted(tps[-1]); sl = slice(last, None, -1)
    rec, fp = np.r_[rec[sl], 1], np.r_[fps[sl], 0]
    out['ood_fpr95'] = fp[np.argmin(np.abs(rec-0.95))]/np.sum(lab==0)
bad = 0
for k,v in out.items():
    d = abs(v-m[k]); flag = 'OK' if d<1e-6 else ('~' if d < 1e-3 else 'BAD')
    if d>=1e-3: bad+=1
    print(f"{k:18s} rust={m[k]:.9f} python={v:.9f} diff={d:.2e} {flag}")
print("mismatches:", bad)
sys.exit(1 if bad else 0)
