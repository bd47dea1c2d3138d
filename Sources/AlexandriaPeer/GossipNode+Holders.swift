import AlexandriaCatalog
import AlexandriaCore
import Foundation

extension GossipNode {
    /// Where to fetch a release's files from: the listen addresses of its live holders (availability gossip), then
    /// of the peers this node is connected to. This node is left out.
    public func fetchPeers(holding manifest: ContentHash, catalog: Catalog, maxAgeMillis: Int) -> [PeerAddress] {
        let holders = (try? catalog.holders(of: manifest, maxAgeMillis: maxAgeMillis)) ?? []
        return PeerChoice.candidates(
            holders: holders.map { Hex.encode($0) }, connected: connectedKeys(), addresses: addresses(),
            selfKey: Hex.encode(identity.publicKey), now: Date().timeIntervalSince1970)
    }
}
