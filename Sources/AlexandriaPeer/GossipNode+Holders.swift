import AlexandriaCatalog
import AlexandriaCore

extension GossipNode {
    /// Where to fetch a release's files from: the listen addresses of its live holders (availability gossip), then
    /// of the peers this node is connected to. This node is left out.
    public func fetchPeers(holding manifest: ContentHash, catalog: Catalog, maxAgeMillis: Int) -> [PeerAddress] {
        let addresses = addresses()
        let me = Hex.encode(identity.publicKey)
        var peers: [PeerAddress] = []
        let holders = (try? catalog.holders(of: manifest, maxAgeMillis: maxAgeMillis)) ?? []
        for key in holders.map({ Hex.encode($0) }) + connectedKeys() where key != me {
            if let a = addresses[key], !peers.contains(a) { peers.append(a) }
        }
        return peers
    }
}
