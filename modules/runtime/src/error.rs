use framework::ModuleError;

/// A transaction's failure as ABCI reports it: codespace, stable code, log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxFailure {
    pub codespace: &'static str,
    pub code: u32,
    pub log: String,
}

impl<E: ModuleError> From<&E> for TxFailure {
    fn from(e: &E) -> Self {
        TxFailure {
            codespace: e.codespace(),
            code: e.code(),
            log: e.to_string(),
        }
    }
}

impl std::fmt::Display for TxFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} code {}: {}", self.codespace, self.code, self.log)
    }
}
