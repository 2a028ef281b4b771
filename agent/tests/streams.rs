//! Checkpoints, models, states and datasets move as streams of chunks: a file of any
//! size is served from disk a chunk at a time, and received into one buffer of
//! exactly its declared size, within a limit the receiver derives from the program
//! (no fixed cap: a state over 2 GiB moves like a small one).

use agent::{chunk_stream, collect_chunks, file_chunk_stream, ChunkStream, CHUNK_BYTES};
use proto::solver::v1::Chunk;
use std::io::{Seek, SeekFrom, Write};

fn stream_of(chunks: Vec<Result<Chunk, tonic::Status>>) -> ChunkStream {
    Box::pin(futures::stream::iter(chunks))
}

fn chunk(data: &[u8], total: u64) -> Result<Chunk, tonic::Status> {
    Ok(Chunk {
        data: data.to_vec(),
        total,
    })
}

#[tokio::test]
async fn a_file_over_two_gib_streams_from_disk_and_arrives_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.safetensors");
    // Sparse: 2 GiB + 3 bytes of which only the ends are written.
    let len = (2u64 << 30) + 3;
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(b"head").unwrap();
    f.set_len(len).unwrap();
    f.seek(SeekFrom::Start(len - 4)).unwrap();
    f.write_all(b"tail").unwrap();
    drop(f);
    let got = collect_chunks(file_chunk_stream(&path).unwrap(), len)
        .await
        .unwrap();
    assert_eq!(got.len() as u64, len);
    assert_eq!(&got[..4], b"head");
    assert_eq!(&got[got.len() - 4..], b"tail");
    assert!(got[4..got.len() - 4].iter().step_by(4093).all(|&b| b == 0));
    assert_eq!(got.capacity() as u64, len, "received into one exact buffer");
    drop(got);
    // One byte under the file's size is refused before anything is read.
    let err = collect_chunks(file_chunk_stream(&path).unwrap(), len - 1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("over the"), "{err}");
}

#[tokio::test]
async fn served_bytes_arrive_bit_for_bit_from_memory_and_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    for n in [
        0,
        1,
        CHUNK_BYTES - 1,
        CHUNK_BYTES,
        CHUNK_BYTES + 1,
        3 * CHUNK_BYTES + 17,
    ] {
        let body: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
        let path = dir.path().join(format!("f{n}"));
        std::fs::write(&path, &body).unwrap();
        let mem = collect_chunks(chunk_stream(body.clone()), n as u64)
            .await
            .unwrap();
        let disk = collect_chunks(file_chunk_stream(&path).unwrap(), n as u64)
            .await
            .unwrap();
        assert_eq!(mem, body, "{n} bytes from memory");
        assert_eq!(disk, body, "{n} bytes from disk");
    }
    assert!(file_chunk_stream(&dir.path().join("missing")).is_err());
}

#[tokio::test]
async fn a_sender_that_lies_about_the_size_costs_the_receiver_nothing() {
    // Announces the largest size there is: refused by the limit, or (no limit) by the
    // allocation, never an abort.
    let huge = || stream_of(vec![chunk(b"x", u64::MAX)]);
    assert!(collect_chunks(huge(), 1 << 30).await.is_err());
    let err = collect_chunks(huge(), u64::MAX).await.unwrap_err();
    assert!(err.to_string().contains("allocate"), "{err}");
    // Sizes that change midway, overruns and early ends.
    let cases = [
        vec![chunk(b"ab", 4), chunk(b"cd", 5)],
        vec![chunk(b"abc", 2)],
        vec![chunk(b"ab", 4)],
        vec![chunk(b"ab", 4), chunk(b"cde", 4)],
    ];
    for c in cases {
        assert!(collect_chunks(stream_of(c), 1 << 20).await.is_err());
    }
    let err = collect_chunks(
        stream_of(vec![Err(tonic::Status::unavailable("gone"))]),
        1 << 20,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("gone"));
}

#[test]
fn the_receivers_limit_bounds_every_checkpoint_tightly() {
    for name in [
        "mlp-digits",
        "tiny-lm",
        "cnn-digits",
        "llama-lm",
        "gated-digits",
    ] {
        let p = train::Program::builtin(name).unwrap();
        let state = train::trainer::initial_state(&p).unwrap();
        let shapes = p.graph().unwrap().state_shapes;
        let file = train::checkpoint::encode(&p, 7, &state).unwrap();
        let bound = train::checkpoint::max_file_bytes(&shapes);
        let data: u64 = state.values().map(|t| 4 * t.len() as u64).sum();
        assert!(
            file.len() as u64 <= bound,
            "{name}: {} > {bound}",
            file.len()
        );
        assert!(
            bound <= data + 64 * 1024,
            "{name}: a loose bound {bound} for {data}"
        );
    }
}
