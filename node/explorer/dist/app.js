// placeholder: replaced by the bundle
