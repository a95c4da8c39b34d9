//! Client formats: how a consumer request is read and checked before routing. OpenAI
//! Chat Completions (with embeddings and images) is the canonical format.

pub mod models;
pub mod openai;
pub mod validate;
