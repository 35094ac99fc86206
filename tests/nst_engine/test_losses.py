import numpy as np
import tensorflow as tf

from nst_engine.losses import content_loss, gram_matrix, total_variation_loss


def test_gram_matrix_is_the_sum_over_positions_divided_by_their_number():
    features = np.random.default_rng(0).normal(size=(2, 5, 7, 4)).astype(np.float32)
    expected = np.zeros((2, 4, 4), np.float32)
    for b in range(2):
        for i in range(5):
            for j in range(7):
                v = features[b, i, j]
                expected[b] += np.outer(v, v)
    expected /= 5 * 7
    np.testing.assert_allclose(gram_matrix(tf.constant(features)).numpy(), expected, rtol=1e-5)


def test_content_loss_of_an_image_with_itself_is_zero_and_positive_otherwise():
    f = tf.random.normal((1, 4, 4, 8), seed=1)
    assert float(content_loss([f], [f])) == 0.0
    assert float(content_loss([f], [f + 1.0])) == np.float32(1.0)


def test_total_variation_of_a_constant_image_is_zero_and_grows_with_edges():
    flat = tf.fill((1, 8, 8, 3), 0.5)
    assert float(total_variation_loss(flat)) == 0.0
    edged = tf.concat([tf.zeros((1, 8, 4, 3)), tf.ones((1, 8, 4, 3))], axis=2)
    # One vertical edge of height 8, in 3 channels, each of size 1.
    assert float(total_variation_loss(edged)) == 24.0
