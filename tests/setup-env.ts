// The AWS SDK's Node 20 deprecation notice is noise in test output (the Lambdas run Node 22).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
