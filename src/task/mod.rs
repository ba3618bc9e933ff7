//! What a model's output means and what explaining one of its targets takes the gradient of:
//! a classifier's class logits, or a segmenter's class scores over a region ([`segment`]).

pub mod segment;
