import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaStore
import Crypto
import Foundation

extension Catalog {
    /// Every stored fact checked again, for `verify`: SQLite's `integrity_check` sees a damaged page structure but not
    /// a byte flipped inside a row's value, and such a flip can change a fact. Checked, row by row:
    /// - a publisher's id is the SHA-256 of its key (`publishers`);
    /// - each log replays: every entry's signature and order (`log_entries`);
    /// - a manifest verifies with its publisher's log and its id is the SHA-256 of its payload (`manifests`);
    /// - a binding names a stored manifest of that publisher and release (`bindings`);
    /// - a checkpoint verifies against its log (`checkpoints`);
    /// - a proof verifies and its id is its hash (`equivocations`);
    /// - an item's id is the SHA-256 of its kind byte and body (`items`).
    /// What is not checked holds no fact another one rests on: arrival times (`first_seen`, `added_ms`,
    /// `detected_at`) and this node's own counters (`local_demand`, `pins`). Returns one line per problem.
    public func contentProblems() throws -> [String] {
        var out: [String] = []
        let keys: [(String, [UInt8])] = try locked {
            let stmt = try db.statement("SELECT id, spki FROM publishers ORDER BY id")
            var rows: [(String, [UInt8])] = []
            while try stmt.step() { rows.append((stmt.text(0), stmt.blob(1))) }
            return rows
        }
        for (id, spki) in keys {
            guard let key = try? P256.Signing.PublicKey(derRepresentation: spki),
                PublisherID(publicKey: key).description == id
            else {
                out.append("publisher \(id.prefix(16))…: its stored key does not match its id")
                continue
            }
            guard let publisher = PublisherID(hex: id) else { continue }
            do {
                guard let log = try log(publisher) else { continue }
                for (checkpoint, note) in try checkpoints(publisher) {
                    let (_, matches) = try log.verify(note)
                    if matches == false {
                        out.append("publisher \(id.prefix(16))…: checkpoint \(checkpoint.size) does not match the log")
                    }
                }
            } catch {
                out.append("publisher \(id.prefix(16))…: its log or checkpoints no longer verify (\(error))")
            }
        }
        let manifestRows: [(String, String, String)] = try locked {
            let stmt = try db.statement("SELECT id, publisher, release FROM manifests ORDER BY id")
            var rows: [(String, String, String)] = []
            while try stmt.step() { rows.append((stmt.text(0), stmt.text(1), stmt.text(2))) }
            return rows
        }
        for (id, publisher, release) in manifestRows {
            do {
                guard let hash = ContentHash(canonical: id), let signed = try manifest(id: hash) else {
                    out.append("manifest \(id): unreadable id")
                    continue
                }
                if signed.id != hash || signed.manifest.publisher.description != publisher
                    || signed.manifest.release.local != release
                {
                    out.append("manifest \(id): its row does not match its signed payload")
                }
            } catch {
                out.append("manifest \(id): no longer verifies (\(error))")
            }
        }
        let bindingRows: [(String, String, String)] = try locked {
            let stmt = try db.statement("SELECT publisher, release, manifest FROM bindings ORDER BY publisher, release")
            var rows: [(String, String, String)] = []
            while try stmt.step() { rows.append((stmt.text(0), stmt.text(1), stmt.text(2))) }
            return rows
        }
        let manifests = Dictionary(manifestRows.map { ($0.0, ($0.1, $0.2)) }, uniquingKeysWith: { a, _ in a })
        for (publisher, release, manifest) in bindingRows {
            guard let m = manifests[manifest], m.0 == publisher, m.1 == release else {
                out.append("binding \(publisher.prefix(16))…/\(release): names no stored manifest of that release")
                continue
            }
        }
        let proofs: [(String, [UInt8])] = try locked {
            let stmt = try db.statement("SELECT id, proof FROM equivocations ORDER BY id")
            var rows: [(String, [UInt8])] = []
            while try stmt.step() { rows.append((stmt.text(0), stmt.blob(1))) }
            return rows
        }
        for (id, bytes) in proofs {
            guard let proof = try? EquivocationProof(json: bytes), (try? proof.verify()) != nil,
                proof.id.description == id
            else {
                out.append("equivocation proof \(id): no longer verifies")
                continue
            }
        }
        let badItems: Int = try locked {
            let stmt = try db.statement("SELECT id, kind, body FROM items")
            var bad = 0
            while try stmt.step() {
                let kind = CatalogItem.Kind(rawValue: UInt8(truncatingIfNeeded: stmt.int(1)))
                if kind.map({ CatalogItem(kind: $0, body: stmt.blob(2)).id.bytes }) != stmt.blob(0) { bad += 1 }
            }
            return bad
        }
        if badItems > 0 { out.append("\(badItems) gossip item(s) whose id is not the hash of their content") }
        return out
    }
}
