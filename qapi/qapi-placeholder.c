/* Placeholder until the QAPI visitor core lands: keeps the layer library non-empty. */
int qapi_placeholder_unused;
