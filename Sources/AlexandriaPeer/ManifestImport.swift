import AlexandriaCatalog
import AlexandriaCore
import AlexandriaManifest
import AlexandriaWire
import Crypto

extension Fetcher {
    /// A manifest learned from a peer and verified into the catalog.
    public struct ImportedManifest: Sendable {
        /// What the peer sent.
        public let bundle: ManifestBundle
        /// The publisher whose key signed it (the fingerprint of `bundle.publisherKey`).
        public let publisher: PublisherID
    }

    /// Asks `peers` for a manifest this node does not know and verifies it into `catalog`: the one place a manifest
    /// from the network is imported on the user's request (`fetch`, `sync`).
    ///
    /// Trust is anchored in what the user typed, and checked before anything is stored:
    /// - a manifest id must be the SHA-256 of the DSSE payload the peer sent (the manifest bytes themselves);
    /// - a release name's publisher id (at least 16 hex digits) must be a prefix of the fingerprint of the key the
    ///   peer sent, so a peer cannot answer with another publisher's release of the same name.
    /// Then the key, the log entries, the checkpoint and the manifest go through the catalog's own checks (every
    /// signature, the log's chain, the release's binding), exactly as gossip's items do. Throws `PeerError.refused`
    /// for an answer that fails the anchor; nothing is stored then.
    public func importManifest(
        _ reference: Reference, from peers: [PeerAddress], into catalog: Catalog
    ) async throws
        -> ImportedManifest
    {
        let query: WireMessage
        var wantPublisher: String?
        switch reference {
        case .manifest(let id), .file(let id): query = .getManifestByID(id)
        case .release(let publisher, let name, let version):
            guard publisher.count >= 16, publisher.allSatisfy(\.isHexDigit) else {
                throw PeerError(
                    .refused,
                    "to fetch a release from peers, name its publisher by id (at least 16 hex digits), not \(publisher)"
                )
            }
            wantPublisher = publisher.lowercased()
            query = .getManifestByRelease("\(publisher.lowercased())/\(name)@\(version)")
        }
        let bundle = try await manifest(query, peers: peers)
        let key = try P256.Signing.PublicKey(derRepresentation: bundle.publisherKey)
        let publisher = PublisherID(publicKey: key)
        if let wantPublisher, !publisher.description.hasPrefix(wantPublisher) {
            throw PeerError(.refused, "\(bundle.peer) answered with another publisher's release; refused")
        }
        let envelope = try DSSEEnvelope(json: bundle.envelope)
        if case .manifest(let id) = reference, ContentHash.of(envelope.payload) != id {
            throw PeerError(.refused, "\(bundle.peer) answered with a manifest that does not hash to \(id); refused")
        }
        try catalog.register(publisherKey: key)
        for entry in bundle.entries { try catalog.addLogEntry(try DSSEEnvelope(json: entry)) }
        if !bundle.checkpoint.isEmpty { try catalog.addCheckpoint(try SignedNote(parsing: bundle.checkpoint)) }
        try catalog.addManifest(envelope)
        return ImportedManifest(bundle: bundle, publisher: publisher)
    }
}
