import Crypto

/// RFC 6962 / RFC 9162 Merkle tree hashing over leaf hashes, with inclusion and consistency proofs.
///
/// - A leaf hash is `SHA-256(0x00 || leaf data)`, an inner node `SHA-256(0x01 || left || right)`; the distinct
///   prefixes stop a leaf from being passed off as an inner node (second-preimage attack).
/// - The tree over `n` leaves splits at the largest power of two smaller than `n`; the root of zero leaves is
///   `SHA-256("")`.
///
/// File roots (leaf data: a chunk's id, offset and length, see `ChunkRef`) and publisher logs use this same code.
public enum MerkleTree {
    /// `SHA-256(0x00 || data)`.
    public static func leafHash(_ data: UnsafeRawBufferPointer) -> ContentHash {
        var hasher = SHA256()
        hasher.update(data: [0x00])
        hasher.update(bufferPointer: data)
        return ContentHash(hasher.finalize())
    }

    public static func leafHash(_ data: [UInt8]) -> ContentHash { data.withUnsafeBytes { leafHash($0) } }

    /// `SHA-256(0x01 || left || right)`.
    public static func nodeHash(_ left: ContentHash, _ right: ContentHash) -> ContentHash {
        var buffer = [UInt8](repeating: 0x01, count: 65)
        buffer.withUnsafeMutableBytes { raw in
            left.write(to: raw.baseAddress! + 1)
            right.write(to: raw.baseAddress! + 33)
        }
        return ContentHash(SHA256.hash(data: buffer))
    }

    /// The root over `leaves` (already leaf-hashed). Pairs each level left to right and promotes an odd last node,
    /// which yields exactly RFC 6962's largest-power-of-two split.
    public static func root<Leaves: Collection>(_ leaves: Leaves) -> ContentHash
    where Leaves.Element == ContentHash {
        if leaves.isEmpty { return .empty }
        var level = Array(leaves)
        while level.count > 1 {
            var next: [ContentHash] = []
            next.reserveCapacity((level.count + 1) / 2)
            var i = 0
            while i + 1 < level.count {
                next.append(nodeHash(level[i], level[i + 1]))
                i += 2
            }
            if i < level.count { next.append(level[i]) }
            level = next
        }
        return level[0]
    }

    /// RFC 9162 §2.1.3.1: the audit path for leaf `index` in the tree over `leaves`.
    public static func inclusionProof(index: Int, leaves: [ContentHash]) -> [ContentHash]? {
        guard index >= 0, index < leaves.count else { return nil }
        var proof: [ContentHash] = []
        func path(_ m: Int, _ range: Range<Int>) {
            let n = range.count
            if n <= 1 { return }
            let k = largestPowerOfTwo(below: n)
            if m < k {
                path(m, range.lowerBound..<range.lowerBound + k)
                proof.append(root(leaves[(range.lowerBound + k)..<range.upperBound]))
            } else {
                path(m - k, (range.lowerBound + k)..<range.upperBound)
                proof.append(root(leaves[range.lowerBound..<(range.lowerBound + k)]))
            }
        }
        path(index, 0..<leaves.count)
        return proof
    }

    /// RFC 9162 §2.1.3.2: whether `proof` shows `leaf` at `index` in a tree of `treeSize` leaves with `root`.
    public static func verifyInclusion(
        leaf: ContentHash, index: Int, treeSize: Int, proof: [ContentHash], root: ContentHash
    ) -> Bool {
        guard index >= 0, index < treeSize else { return false }
        var fn = index
        var sn = treeSize - 1
        var r = leaf
        for p in proof {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }

    /// RFC 9162 §2.1.4.1: the consistency proof between the tree of the first `oldSize` leaves and all `leaves`.
    public static func consistencyProof(oldSize: Int, leaves: [ContentHash]) -> [ContentHash]? {
        guard oldSize >= 0, oldSize <= leaves.count else { return nil }
        if oldSize == 0 || oldSize == leaves.count { return [] }
        var proof: [ContentHash] = []
        func subproof(_ m: Int, _ range: Range<Int>, _ complete: Bool) {
            let n = range.count
            if m == n {
                if !complete { proof.append(root(leaves[range])) }
                return
            }
            let k = largestPowerOfTwo(below: n)
            if m <= k {
                subproof(m, range.lowerBound..<range.lowerBound + k, complete)
                proof.append(root(leaves[(range.lowerBound + k)..<range.upperBound]))
            } else {
                subproof(m - k, (range.lowerBound + k)..<range.upperBound, false)
                proof.append(root(leaves[range.lowerBound..<(range.lowerBound + k)]))
            }
        }
        subproof(oldSize, 0..<leaves.count, true)
        return proof
    }

    /// RFC 9162 §2.1.4.2: whether `proof` shows the tree (`oldSize`, `oldRoot`) is a prefix of (`newSize`, `newRoot`).
    public static func verifyConsistency(
        oldSize: Int, oldRoot: ContentHash, newSize: Int, newRoot: ContentHash, proof: [ContentHash]
    ) -> Bool {
        guard oldSize >= 0, oldSize <= newSize else { return false }
        if oldSize == newSize { return proof.isEmpty && oldRoot == newRoot }
        if oldSize == 0 { return proof.isEmpty }
        var path = proof
        if oldSize.nonzeroBitCount == 1 { path.insert(oldRoot, at: 0) }
        guard !path.isEmpty else { return false }
        var fn = oldSize - 1
        var sn = newSize - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return fr == oldRoot && sr == newRoot && sn == 0
    }

    static func largestPowerOfTwo(below n: Int) -> Int {
        precondition(n > 1)
        var k = 1
        while k << 1 < n { k <<= 1 }
        return k
    }
}
