#!/usr/bin/env python3
"""Reads and writes safetensors files with PyTorch alone (Debian's python3-torch 1.13 has no
safetensors package). The format: an 8-byte little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the
raw little-endian data of every tensor.

As a module (the names of safetensors.torch):
    from safetensors_torch import save_file, load_file
    save_file(model.state_dict(), "model.safetensors", metadata={"epoch": "3"})
    model.load_state_dict(load_file("model.safetensors"))
As a program:
    safetensors_torch.py ls FILE                list name, dtype, shape
    safetensors_torch.py from-pt IN.pt OUT      a torch.save'd state_dict to safetensors
    safetensors_torch.py to-pt IN OUT.pt        safetensors to a torch.save'd dict
    safetensors_torch.py copy IN OUT            load and save again (an interop check)
    safetensors_torch.py demo OUT               tensors of every dtype tapegrad reads
"""
import json
import struct
import sys

try:
    import torch
except ImportError:
    print("safetensors_torch.py: PyTorch is not installed (Debian: apt install python3-torch)",
          file=sys.stderr)
    sys.exit(77)  # "skipped" for test drivers

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}


def _raw_bytes(t):
    t = t.detach().cpu().contiguous().reshape(-1)
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: same bits as int16
        t = t.view(torch.int16)
    if sys.byteorder != "little":
        raise RuntimeError("safetensors_torch: big-endian hosts are not supported")
    return t.numpy().tobytes()


def save_file(tensors, path, metadata=None):
    """Writes tensors (a dict name -> tensor) in the reference writer's order: by dtype size,
    largest first, then by name, so every tensor is aligned to its element size."""
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in order:
        t = tensors[name]
        if t.dtype not in NAMES:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {t.dtype}")
        data = _raw_bytes(t)
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_header(path):
    """(header dict without __metadata__, metadata dict, data bytes)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError(f"{path}: header length {n} exceeds the file")
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", {})
    return header, metadata, bytearray(raw[8 + n:])


def load_file(path):
    """A dict name -> tensor (copies, in the file's dtypes)."""
    header, _, data = read_header(path)
    out = {}
    for name, e in header.items():
        dtype = DTYPES.get(e["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor '{name}': unsupported dtype {e['dtype']}")
        begin, end = e["data_offsets"]
        shape = e["shape"]
        count = 1
        for s in shape:
            count *= s
        if count == 0:
            out[name] = torch.empty(shape, dtype=dtype)
            continue
        base = torch.int16 if dtype == torch.bfloat16 else dtype
        t = torch.frombuffer(data, dtype=base, count=count, offset=begin)
        if end - begin != t.numel() * t.element_size():
            raise ValueError(f"{path}: tensor '{name}': data_offsets do not match its shape")
        if dtype == torch.bfloat16:
            t = t.view(torch.bfloat16)
        out[name] = t.reshape(shape).clone()
    return out


def demo_tensors():
    """Tensors of every dtype tapegrad reads, with values tests recompute: element i of "f32"
    is i/4, of "f64" i/10, of "f16" and "bf16" i/8 - 1/4 (exact in both), "i64" holds values
    beyond int32 and 2^53, "bn.num_batches_tracked" is batch norm's int64 scalar."""
    i6 = torch.arange(6, dtype=torch.float64)
    return {
        "f32": (i6 / 4).to(torch.float32).reshape(2, 3),
        "f64": torch.arange(3, dtype=torch.float64) / 10,
        "f16": (torch.arange(4, dtype=torch.float64) / 8 - 0.25).to(torch.float16),
        "bf16": (torch.arange(4, dtype=torch.float64) / 8 - 0.25).to(torch.bfloat16).reshape(2, 2),
        "i64": torch.tensor([-1, 2**40, 2**62 + 1], dtype=torch.int64),
        "i32": torch.tensor([7, -8], dtype=torch.int32),
        "bn.num_batches_tracked": torch.tensor(123456789012, dtype=torch.int64),
    }


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 2
    cmd, args = argv[1], argv[2:]
    if cmd == "ls" and len(args) == 1:
        header, metadata, _ = read_header(args[0])
        for name, e in header.items():
            print(f"{name}\t{e['dtype']}\t{e['shape']}")
        for k, v in metadata.items():
            print(f"__metadata__ {k} = {v}")
    elif cmd == "from-pt" and len(args) == 2:
        save_file(torch.load(args[0], map_location="cpu"), args[1])
    elif cmd == "to-pt" and len(args) == 2:
        torch.save(load_file(args[0]), args[1])
    elif cmd == "copy" and len(args) == 2:
        _, metadata, _ = read_header(args[0])
        save_file(load_file(args[0]), args[1], metadata)
    elif cmd == "demo" and len(args) == 1:
        save_file(demo_tensors(), args[0], {"writer": "safetensors_torch.py"})
    else:
        print(f"safetensors_torch.py: bad command line: {' '.join(argv[1:])} (-h for help)",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
