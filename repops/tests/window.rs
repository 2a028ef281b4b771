//! The window ops a convolution and max pooling are built from (`im2col`, `col2im`,
//! `max_last`, `max_last_backward`): small cases worked by hand, the adjoint identity
//! `<im2col(x), c> = <x, col2im(c)>`, and their refusals.
use repops::{Op, Tensor};

fn run(op: Op, ins: &[&Tensor]) -> repops::Result<Tensor> {
    op.execute(ins)
}

fn t(shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor::new(shape.to_vec(), data).unwrap()
}

#[test]
fn im2col_lays_out_patches_with_zero_padding() {
    // One 1x3x3 image 1..9, 2x2 windows, stride 1, padding 0: four patches.
    let x = t(&[1, 1, 3, 3], (1..=9).map(|v| v as f32).collect());
    let op = Op::Im2Col {
        kh: 2,
        kw: 2,
        stride: 1,
        pad: 0,
    };
    let y = run(op, &[&x]).unwrap();
    assert_eq!(y.shape(), &[4, 4]);
    assert_eq!(
        y.data(),
        &[1., 2., 4., 5., 2., 3., 5., 6., 4., 5., 7., 8., 5., 6., 8., 9.]
    );
    // Padding 1, 3x3 windows: the corner patch has zeros where the image is not.
    let op = Op::Im2Col {
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 1,
    };
    let y = run(op, &[&x]).unwrap();
    assert_eq!(y.shape(), &[9, 9]);
    assert_eq!(&y.data()[..9], &[0., 0., 0., 0., 1., 2., 0., 4., 5.]);
}

#[test]
fn col2im_is_the_adjoint_of_im2col() {
    let (n, c, h, w) = (2, 3, 5, 4);
    for (kh, kw, stride, pad) in [(3, 3, 1, 1), (2, 2, 2, 0), (3, 2, 2, 1), (1, 1, 1, 0)] {
        let x = t(
            &[n, c, h, w],
            (0..n * c * h * w)
                .map(|i| ((i * 7) % 11) as f32 - 5.0)
                .collect(),
        );
        let cols = run(
            Op::Im2Col {
                kh,
                kw,
                stride,
                pad,
            },
            &[&x],
        )
        .unwrap();
        let g = t(
            cols.shape(),
            (0..cols.len())
                .map(|i| ((i * 5) % 13) as f32 - 6.0)
                .collect(),
        );
        let back = run(
            Op::Col2Im {
                channels: c,
                height: h,
                width: w,
                kh,
                kw,
                stride,
                pad,
            },
            &[&g],
        )
        .unwrap();
        assert_eq!(back.shape(), x.shape());
        // Small integers: both sides are exact.
        let lhs: f64 = cols
            .data()
            .iter()
            .zip(g.data())
            .map(|(a, b)| (a * b) as f64)
            .sum();
        let rhs: f64 = x
            .data()
            .iter()
            .zip(back.data())
            .map(|(a, b)| (a * b) as f64)
            .sum();
        assert_eq!(lhs, rhs, "{kh}x{kw} stride {stride} pad {pad}");
    }
}

#[test]
fn max_last_takes_the_r3_max_and_its_backward_the_first_maximum() {
    let nan = f32::from_bits(0x7fc0_0001);
    let x = t(
        &[4, 3],
        vec![1., 5., 5., -0., 0., -1., 2., nan, 9., -3., -2., -7.],
    );
    let m = run(Op::MaxLast, &[&x]).unwrap();
    assert_eq!(m.data()[0], 5.0);
    assert_eq!(m.data()[1].to_bits(), 0.0f32.to_bits(), "max(-0, +0) = +0");
    assert_eq!(m.data()[2].to_bits(), 0x7fc0_0000, "NaN, canonical");
    assert_eq!(m.data()[3], -2.0);
    let dy = t(&[4], vec![10., 20., 30., 40.]);
    let dx = run(Op::MaxLastBackward, &[&x, &dy]).unwrap();
    assert_eq!(
        dx.data(),
        &[0., 10., 0., 20., 0., 0., 0., 30., 0., 0., 40., 0.],
        "the first of equal maxima; -0 equals +0; the first NaN"
    );
}

#[test]
fn window_ops_refuse_what_does_not_fit() {
    let x = t(&[1, 1, 3, 3], vec![0.0; 9]);
    let im = |kh, kw, stride, pad| Op::Im2Col {
        kh,
        kw,
        stride,
        pad,
    };
    for op in [
        im(4, 4, 1, 0),
        im(0, 2, 1, 0),
        im(2, 2, 0, 0),
        im(2, 2, 1, 2),
        im(65, 1, 1, 0),
    ] {
        assert!(run(op.clone(), &[&x]).is_err(), "{op:?}");
    }
    assert!(
        run(im(2, 2, 1, 0), &[&t(&[9], vec![0.0; 9])]).is_err(),
        "rank 4"
    );
    let cols = t(&[4, 5], vec![0.0; 20]);
    let ci = Op::Col2Im {
        channels: 1,
        height: 3,
        width: 3,
        kh: 2,
        kw: 2,
        stride: 1,
        pad: 0,
    };
    assert!(run(ci, &[&cols]).is_err(), "4 columns expected");
    assert!(
        run(Op::MaxLast, &[&t(&[2, 0], vec![])]).is_err(),
        "empty rows"
    );
    let dy = t(&[3], vec![0.0; 3]);
    assert!(run(Op::MaxLastBackward, &[&t(&[2, 2], vec![0.0; 4]), &dy]).is_err());
}
