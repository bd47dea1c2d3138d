import AlexandriaCore
import Testing

@Suite("Merkle trees against Protocol/test-vectors/merkle.json (RFC 6962 data)")
struct MerkleTests {
    let file: Vectors.MerkleFile
    let leaves: [ContentHash]

    init() throws {
        file = try Vectors.load("merkle.json", as: Vectors.MerkleFile.self)
        leaves = file.leafData.map { MerkleTree.leafHash(Hex.decode($0)!) }
    }

    @Test func leafHashesAndRoots() {
        #expect(leaves.map(\.hex) == file.leafHashes)
        for root in file.roots {
            #expect(MerkleTree.root(leaves.prefix(root.size)).hex == root.root, "size \(root.size)")
        }
        #expect(MerkleTree.root([ContentHash]()).hex == file.emptyRoot)
        #expect(MerkleTree.root(leaves).hex == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
    }

    @Test func inclusionProofs() throws {
        #expect(file.inclusionProofs.count >= 36)
        for vector in file.inclusionProofs {
            let subset = Array(leaves.prefix(vector.size))
            let proof = try #require(MerkleTree.inclusionProof(index: vector.index, leaves: subset))
            #expect(proof.map(\.hex) == vector.proof, "index \(vector.index) of \(vector.size)")
            let root = MerkleTree.root(subset)
            #expect(
                MerkleTree.verifyInclusion(
                    leaf: subset[vector.index], index: vector.index, treeSize: vector.size, proof: proof, root: root))
            // Any change breaks it: another leaf, another index, a tampered path, a truncated path.
            let other = subset[(vector.index + 1) % vector.size]
            if vector.size > 1 {
                #expect(
                    !MerkleTree.verifyInclusion(
                        leaf: other, index: vector.index, treeSize: vector.size, proof: proof, root: root))
                #expect(
                    !MerkleTree.verifyInclusion(
                        leaf: subset[vector.index], index: vector.index, treeSize: vector.size,
                        proof: Array(proof.dropLast()), root: root))
            }
            // The index is bound: the same leaf and path claimed at another position fail.
            // (The tree size is bound only together with the root, as in a signed checkpoint: RFC 9162 paths for
            // sizes n and n + 1 can coincide, so a verifier must take both from the same checkpoint.)
            if vector.size > 1 {
                #expect(
                    !MerkleTree.verifyInclusion(
                        leaf: subset[vector.index], index: (vector.index + 1) % vector.size, treeSize: vector.size,
                        proof: proof, root: root))
            }
        }
    }

    @Test func consistencyProofs() throws {
        #expect(file.consistencyProofs.count >= 36)
        for vector in file.consistencyProofs {
            let proof = try #require(
                MerkleTree.consistencyProof(oldSize: vector.oldSize, leaves: Array(leaves.prefix(vector.newSize))))
            #expect(proof.map(\.hex) == vector.proof, "\(vector.oldSize) -> \(vector.newSize)")
            let oldRoot = MerkleTree.root(leaves.prefix(vector.oldSize))
            let newRoot = MerkleTree.root(leaves.prefix(vector.newSize))
            #expect(
                MerkleTree.verifyConsistency(
                    oldSize: vector.oldSize, oldRoot: oldRoot, newSize: vector.newSize, newRoot: newRoot, proof: proof))
            if vector.oldSize < vector.newSize {
                let forged = MerkleTree.root([leaves[0], leaves[0]] + leaves.prefix(vector.oldSize).dropFirst(2))
                #expect(
                    !MerkleTree.verifyConsistency(
                        oldSize: vector.oldSize, oldRoot: forged == oldRoot ? leaves[7] : forged,
                        newSize: vector.newSize, newRoot: newRoot, proof: proof))
            }
        }
    }

    @Test func chunkLeafCoversIdOffsetAndLength() {
        let example = file.chunkLeafExample
        let ref = ChunkRef(id: ContentHash(canonical: example.id)!, offset: example.offset, length: example.length)
        #expect(ref.leafHash.hex == example.leafHash)
        #expect(ref.leafHash == MerkleTree.leafHash(Hex.decode(example.leafData)!))
        let moved = ChunkRef(id: ref.id, offset: ref.offset + 1, length: ref.length)
        #expect(moved.leafHash != ref.leafHash)
    }

    @Test(arguments: [1, 2, 3, 5, 8, 13, 64, 100, 1000])
    func proofsForEveryLeafOfLargerTrees(size: Int) throws {
        let hashes = (0..<size).map { MerkleTree.leafHash([UInt8(truncatingIfNeeded: $0), UInt8($0 >> 8)]) }
        let root = MerkleTree.root(hashes)
        for index in Set([0, size / 2, size - 1]) {
            let proof = try #require(MerkleTree.inclusionProof(index: index, leaves: hashes))
            #expect(
                MerkleTree.verifyInclusion(leaf: hashes[index], index: index, treeSize: size, proof: proof, root: root))
        }
        for old in Set([1, size / 3, size - 1]) where old >= 1 {
            let proof = try #require(MerkleTree.consistencyProof(oldSize: old, leaves: hashes))
            #expect(
                MerkleTree.verifyConsistency(
                    oldSize: old, oldRoot: MerkleTree.root(hashes.prefix(old)), newSize: size, newRoot: root,
                    proof: proof))
        }
    }
}
