import Crypto
import Testing
@testable import WireFormat

/// Frames are authenticated with our own HMAC-SHA256 construction over prepared hashers;
/// it must give exactly swift-crypto's `HMAC<SHA256>` for every key length.
@Suite struct AuthenticationKeyTests {
    @Test(arguments: [1, 16, 32, 63, 64, 65, 100])
    func codesMatchSwiftCryptosHMAC(keyLength: Int) {
        var generator = SystemRandomNumberGenerator()
        let key = SymmetricKey(data: (0..<keyLength).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let prepared = AuthenticationKey(key)
        for length in [0, 1, 55, 56, 63, 64, 65, 119, 128, 300, 4_096] {
            let message = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let number = UInt64.random(in: 0...UInt64.max, using: &generator)
            let plain = message.withUnsafeBytes { prepared.authenticationCode(for: $0) }
            let numbered = message.withUnsafeBytes { prepared.authenticationCode(for: $0, number: number) }
            let numberBytes = withUnsafeBytes(of: number.littleEndian) { Array($0) }
            #expect(Array(plain) == Array(HMAC<SHA256>.authenticationCode(for: message, using: key)), "key \(keyLength) B, message \(length) B")
            #expect(
                Array(numbered) == Array(HMAC<SHA256>.authenticationCode(for: numberBytes + message, using: key)),
                "key \(keyLength) B, message \(length) B, numbered")
        }
    }
}
