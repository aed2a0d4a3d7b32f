//! The producers' partitioners, computed the way the clients compute them, so that vigil knows
//! which partition (and so which task) every district's events arrive on. Scale-out relies on
//! it: a task owns exactly the districts whose key hashes to its partition.

/// How producers map a message key to a partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Partitioner {
    /// CRC-32 of the key modulo the partition count: librdkafka's default (`consistent_random`,
    /// also `consistent`), used by every librdkafka-based client (C, C++, Python, Go, Rust...).
    #[default]
    Crc32,
    /// Kafka's murmur2 (positive part) modulo the partition count: the Java client's default,
    /// and librdkafka's `murmur2` / `murmur2_random`.
    Murmur2,
}

impl Partitioner {
    pub fn parse(text: &str) -> Option<Partitioner> {
        match text {
            "crc32" | "consistent" | "consistent_random" => Some(Partitioner::Crc32),
            "murmur2" | "murmur2_random" => Some(Partitioner::Murmur2),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Partitioner::Crc32 => "crc32",
            Partitioner::Murmur2 => "murmur2",
        }
    }

    /// The partition of a message with `key` on a topic of `partitions` partitions.
    pub fn partition(self, key: &[u8], partitions: i32) -> i32 {
        let n = partitions.max(1) as u32;
        let h = match self {
            Partitioner::Crc32 => crc32(key),
            Partitioner::Murmur2 => murmur2(key) & 0x7fff_ffff,
        };
        (h % n) as i32
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib), bit by bit: keys are a few bytes and this runs once
/// per district at start-up.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`, seed 0x9747b28c).
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The check value of CRC-32/ISO-HDLC (zlib's crc32) over "123456789".
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values from Kafka's own UtilsTest.testMurmur2 (Java ints, as unsigned here).
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key) as i32, want, "{}", String::from_utf8_lossy(key));
        }
    }
}
